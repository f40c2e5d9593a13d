-- Flow control and cron.

-- The concurrency gate of a run ("function id \x1f key value") and its limit; a run is executing while
-- its job holds a live lease, so a gate's load is a count of leased jobs.
ALTER TABLE jobs ADD COLUMN gate text, ADD COLUMN gate_limit int;
CREATE INDEX jobs_gated_leased ON jobs (gate) WHERE gate IS NOT NULL AND lease_token IS NOT NULL;
CREATE INDEX jobs_by_priority ON jobs (priority DESC, available_at);

-- Per (function, option, key) state, locked by the ingest that decides:
-- rateLimit: `stamps` = recent start times (ms); throttle: `stamps` = reserved start times (ms);
-- debounce/batch: `run_id` = the open run collecting events, `first_at` (ms), `size` (batch).
CREATE TABLE flow_state (
    app_id       text NOT NULL,
    function_id  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('rateLimit', 'throttle', 'debounce', 'batch')),
    key          text NOT NULL,
    stamps       jsonb NOT NULL DEFAULT '[]',
    run_id       text,
    first_at     bigint,
    size         int NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, function_id, kind, key)
);

-- Why an event started no run of a function, or which run it joined:
-- [{functionId, outcome: "skipped" | "debounced" | "batched", reason?, runId?}]
ALTER TABLE events ADD COLUMN outcomes jsonb NOT NULL DEFAULT '[]';
-- Why a run is scheduled: {"throttle": {"until": ms}, "debounce": {"until": ms}, "batch": {...}}
ALTER TABLE runs ADD COLUMN flow jsonb;

CREATE TABLE cron_schedules (
    app_id       text NOT NULL,
    function_id  text NOT NULL,
    expr         text NOT NULL,
    next_at      timestamptz NOT NULL,
    PRIMARY KEY (app_id, function_id),
    FOREIGN KEY (app_id, function_id) REFERENCES functions (app_id, id) ON DELETE CASCADE
);
CREATE INDEX cron_by_next ON cron_schedules (next_at);

-- First come, first served among jobs due at the same time and priority.
ALTER TABLE jobs ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;

-- Due gated jobs, so that finding the gates to lock is cheap (and free when nothing is gated).
CREATE INDEX jobs_gated_due ON jobs (priority DESC, available_at) WHERE gate IS NOT NULL;
