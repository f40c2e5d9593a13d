-- Durable's schema. Every active run owns exactly one row in `jobs`: that row is the run's mutex
-- (lock order: jobs row first, then anything else of the run) and its timer (`available_at`).

-- A time-sortable id: 12 hex digits of epoch milliseconds, then 14 random hex digits.
CREATE FUNCTION durable_id() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
           || substr(md5(random()::text || clock_timestamp()::text), 1, 14)
$$;

CREATE TABLE apps (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    environment  text NOT NULL CHECK (environment IN ('dev', 'acc', 'prod')),
    signing_key  text NOT NULL,
    url          text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    synced_at    timestamptz,
    UNIQUE (name, environment)
);

CREATE TABLE functions (
    app_id         text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    id             text NOT NULL,
    name           text NOT NULL,
    trigger_event  text,
    trigger_cron   text,
    config         jsonb NOT NULL,   -- the normalised options: retries, concurrency, priority, ...
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, id),
    CHECK ((trigger_event IS NULL) <> (trigger_cron IS NULL))
);
CREATE INDEX functions_by_event ON functions (app_id, trigger_event) WHERE trigger_event IS NOT NULL;

-- The 24-hour idempotency window of event ids; pruned by the scheduler.
CREATE TABLE event_ids (
    app_id   text NOT NULL,
    id       text NOT NULL,
    seen_at  timestamptz NOT NULL,
    PRIMARY KEY (app_id, id)
);

CREATE TABLE events (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id       text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    id           text NOT NULL,
    name         text NOT NULL,
    data         jsonb NOT NULL,
    ts           bigint NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_by_app ON events (app_id, seq);
CREATE INDEX events_by_name ON events (app_id, name, received_at);

CREATE TABLE runs (
    id           text PRIMARY KEY,     -- time-sortable, so `ORDER BY id` is creation order
    app_id       text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    function_id  text NOT NULL,
    event_id     text NOT NULL,
    event        jsonb NOT NULL,       -- {id, name, data, ts} exactly as sent in every invoke
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'completed', 'failed', 'cancelled')),
    activity     text CHECK (activity IN ('executing', 'queued', 'waiting', 'sleeping', 'scheduled')),
    output       jsonb,
    error        jsonb,
    rerun_of     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    ended_at     timestamptz,
    CHECK ((status = 'active') = (activity IS NOT NULL))
);
CREATE INDEX runs_by_app ON runs (app_id, id);
CREATE INDEX runs_by_app_status ON runs (app_id, status, id);
CREATE INDEX runs_by_function ON runs (app_id, function_id, id);
CREATE INDEX runs_by_event ON runs (app_id, event_id);

CREATE TABLE steps (
    run_id      text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    id          text NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,   -- execution order
    type        text NOT NULL CHECK (type IN ('run', 'sleep', 'wait')),
    status      text NOT NULL CHECK (status IN ('completed', 'failed', 'retrying', 'sleeping', 'waiting')),
    attempts    int NOT NULL DEFAULT 1,
    output      jsonb,
    error       jsonb,
    queued_ms   int NOT NULL DEFAULT 0,   -- durable time: queue, backoff, sleep or wait
    app_ms      int NOT NULL DEFAULT 0,   -- time inside the app's HTTP answer
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    PRIMARY KEY (run_id, id)
);

-- One row per active run. Free: `available_at` is when it is due. Claimed: `lease_token` is set and
-- `available_at` is when the lease expires, so one index serves both due work and expired leases.
CREATE TABLE jobs (
    run_id        text PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    app_id        text NOT NULL,
    priority      int NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL,
    ready_at      timestamptz NOT NULL,   -- when the run last became due, for a step's queued_ms
    attempt       int NOT NULL DEFAULT 1, -- attempt number of the next invoke, 1-based per step
    lease_token   uuid,
    claimed_by    text
);
CREATE INDEX jobs_by_available ON jobs (available_at);

CREATE TABLE waits (
    run_id      text PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    app_id      text NOT NULL,
    step_id     text NOT NULL,
    event_name  text NOT NULL,
    match       jsonb,
    until       timestamptz NOT NULL
);
CREATE INDEX waits_by_event ON waits (app_id, event_name);
