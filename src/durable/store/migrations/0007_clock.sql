-- The injectable database clock. Every timer (job due times, leases, backoff, sleeps, wait deadlines,
-- cron, flow-control windows, the 24 h event-id window) reads durable_now() or durable_clock() instead
-- of now() / clock_timestamp(), so a test moves time instead of sleeping.
--
-- Both are one-expression SQL functions (no SET clause, not STRICT), which the planner inlines: as
-- shipped they plan exactly as now() and clock_timestamp() do, so production pays nothing for them.
-- durable_set_clock_offset(ms) redefines both with the offset as a constant, for the whole database:
-- every connection of every process sees the jump at its next statement (Postgres invalidates the
-- cached plans that inlined the old definition). It is for tests (store/db.py
-- `Database.set_clock_offset`); an engine never calls it.

CREATE FUNCTION durable_now() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT now() $$;

CREATE FUNCTION durable_clock() RETURNS timestamptz
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$ SELECT clock_timestamp() $$;

CREATE FUNCTION durable_set_clock_offset(offset_ms bigint) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    shift text := CASE WHEN offset_ms = 0 THEN ''
                       ELSE format(' + %s * interval %L', offset_ms, '1 millisecond') END;
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION durable_now() RETURNS timestamptz '
                   'LANGUAGE sql STABLE PARALLEL SAFE AS %L', 'SELECT now()' || shift);
    EXECUTE format('CREATE OR REPLACE FUNCTION durable_clock() RETURNS timestamptz '
                   'LANGUAGE sql VOLATILE PARALLEL SAFE AS %L', 'SELECT clock_timestamp()' || shift);
END
$fn$;

-- A run's created_at sits beside started_at and ended_at (written by the timer queries) in the run view
-- and the metrics rollup, so it reads the same clock.
ALTER TABLE runs ALTER COLUMN created_at SET DEFAULT durable_now();
