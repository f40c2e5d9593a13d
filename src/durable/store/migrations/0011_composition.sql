-- Composition and run control (issue 11; docs/protocol.md, "Composition").

-- A run started by step.invoke knows its parent and the parent's step; children are found by parent.
-- cancelled_by: who cancelled a run {kind: user|event|singleton|parent|bulk, eventId?, eventName?, runId?}.
ALTER TABLE runs ADD COLUMN parent_run_id text, ADD COLUMN parent_step_id text, ADD COLUMN cancelled_by jsonb;
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

-- Steps of two more kinds: an invoke (pending while 'waiting', with its child and deadline) and a send.
ALTER TABLE steps DROP CONSTRAINT steps_type_check;
ALTER TABLE steps ADD CONSTRAINT steps_type_check CHECK (type IN ('run', 'sleep', 'wait', 'invoke', 'send'));
ALTER TABLE steps ADD COLUMN child_run_id text, ADD COLUMN until timestamptz;

-- A function may have no trigger (started only by invoke, as a failure handler, or from the dashboard),
-- and may be paused by an operator: {mode: queue|skip, since: ms}. A sync never changes `paused`.
ALTER TABLE functions DROP CONSTRAINT functions_check;
ALTER TABLE functions ADD CONSTRAINT functions_one_trigger CHECK (trigger_event IS NULL OR trigger_cron IS NULL);
ALTER TABLE functions ADD COLUMN paused jsonb;

-- cancelOn: per active run, each event that cancels it. `match` is the subset of the cancelling event's
-- data (built from the option's key path and the run's own event), null for any event of that name.
CREATE TABLE run_cancels (
    run_id      text NOT NULL,
    idx         int NOT NULL,
    app_id      text NOT NULL,
    event_name  text NOT NULL,
    match       jsonb,
    until       timestamptz,
    PRIMARY KEY (run_id, idx)
);
CREATE INDEX run_cancels_by_event ON run_cancels (app_id, event_name);

-- Two more kinds of per-key state: singleton (run_id = the key's active run) and idempotency
-- (first_at = when the key was first used; the key holds for 24 h).
ALTER TABLE flow_state DROP CONSTRAINT flow_state_kind_check;
ALTER TABLE flow_state ADD CONSTRAINT flow_state_kind_check
    CHECK (kind IN ('rateLimit', 'throttle', 'debounce', 'batch', 'singleton', 'idempotency'));
