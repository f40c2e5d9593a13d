-- Dashboard metrics, rolled up per minute by the scheduler (engine/metrics.py) so charts never scan
-- the runs table: runs started, completed and failed, the durable wait vs app time of their steps, and
-- a histogram of run durations (48 buckets, each √2 wider than the one before, from 1 ms).
CREATE TABLE metrics_minute (
    app_id       text NOT NULL,
    function_id  text NOT NULL,
    minute       timestamptz NOT NULL,
    started      int NOT NULL DEFAULT 0,
    completed    int NOT NULL DEFAULT 0,
    failed       int NOT NULL DEFAULT 0,
    queued_ms    bigint NOT NULL DEFAULT 0,
    app_ms       bigint NOT NULL DEFAULT 0,
    histogram    jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (app_id, minute, function_id)
);

-- Runs due and waiting for a worker, sampled at each rollup (the largest sample of the minute).
CREATE TABLE metrics_backlog (
    app_id   text NOT NULL,
    minute   timestamptz NOT NULL,
    backlog  int NOT NULL,
    PRIMARY KEY (app_id, minute)
);

-- How far the rollup has read: runs created and runs ended up to these times.
CREATE TABLE metrics_cursor (
    id          int PRIMARY KEY CHECK (id = 1),
    created_to  timestamptz NOT NULL,
    ended_to    timestamptz NOT NULL
);
INSERT INTO metrics_cursor VALUES (1, now(), now());

CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;
