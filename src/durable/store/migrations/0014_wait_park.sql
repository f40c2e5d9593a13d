-- Storing a wait in one statement (issue 13). A wait takes the exclusive advisory lock of its (app,
-- event name), looks back for events stored since its invoke began, and parks the run if none came.
-- Issued from the engine as three statements and a commit, the lock was held across four round trips:
-- runs parking on one event name queued behind it (10,000 through the app: 317 parks a second, 49 ms
-- queued each on average). As one function call in autocommit, it is held for the call and its commit.
--
-- The look-back is the function's second statement: in READ COMMITTED a VOLATILE function takes a new
-- snapshot per statement, so it sees every event whose ingest committed before the lock was granted;
-- an ingest that commits later took its shared lock after this commit (event_lock_names) and sees the
-- wait. The caller matches candidates exactly (core/match.py); `data @> match` only narrows them.
--
-- p_look_back: look back first (false: the caller already did, holding the lock in its transaction);
-- p_park: park when nothing arrived (false: return the candidates only). Returns the outcome: 'parked',
-- 'lost' (the lease token no longer holds the job), 'arrived' with the candidates (nothing parked:
-- the caller decides under the lock, in a transaction), or 'none' (looked back, nothing, not parked).
CREATE FUNCTION durable_wait_park(
    p_run_id text, p_token uuid, p_step_id text, p_app_id text, p_event text, p_match jsonb,
    p_since timestamptz, p_app_ms int, p_until timestamptz, p_attempt int,
    p_look_back boolean, p_park boolean
) RETURNS TABLE (outcome text, candidates jsonb)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    found jsonb;
    parked text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_app_id || '/' || p_event, 0));
    IF p_look_back THEN
        SELECT jsonb_agg(jsonb_build_object('id', e.id, 'name', e.name, 'data', e.data, 'ts', e.ts)
                         ORDER BY e.received_at, e.seq)
        INTO found
        FROM (SELECT id, name, data, ts, received_at, seq
              FROM events
              WHERE app_id = p_app_id AND name = p_event AND received_at >= p_since
                AND (p_match IS NULL OR data @> p_match)
              ORDER BY received_at, seq
              LIMIT 100) AS e;
        IF found IS NOT NULL THEN
            RETURN QUERY SELECT 'arrived'::text, found;
            RETURN;
        END IF;
    END IF;
    IF NOT p_park THEN
        RETURN QUERY SELECT 'none'::text, NULL::jsonb;
        RETURN;
    END IF;
    -- Park: a wait row, a 'waiting' step, and a free job due at the deadline, fenced on the lease.
    WITH lease AS (
        UPDATE jobs SET available_at = p_until, ready_at = p_until, attempt = 1, lease_token = NULL,
                        claimed_by = NULL
        WHERE run_id = p_run_id AND lease_token = p_token
        RETURNING run_id, app_id
    ), wait AS (
        INSERT INTO waits (run_id, app_id, step_id, event_name, match, until)
        SELECT run_id, app_id, p_step_id, p_event, p_match, p_until FROM lease
    ), step AS (
        INSERT INTO steps (run_id, id, type, status, attempts, app_ms, started_at)
        SELECT run_id, p_step_id, 'wait', 'waiting', p_attempt, p_app_ms, durable_now() FROM lease
        ON CONFLICT (run_id, id) DO NOTHING
    )
    UPDATE runs r SET activity = 'waiting' FROM lease WHERE r.id = lease.run_id
    RETURNING r.id INTO parked;
    IF parked IS NULL THEN
        RETURN QUERY SELECT 'lost'::text, NULL::jsonb;
        RETURN;
    END IF;
    PERFORM pg_notify('durable_jobs', '');
    RETURN QUERY SELECT 'parked'::text, NULL::jsonb;
END
$fn$;
