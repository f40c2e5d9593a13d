-- name: event_lock_names
-- Shared lock per (app, event name), taken before an event is stored. A wait being stored takes the
-- same key exclusively, so each side's next statement sees the other's commit: no wait misses an
-- event that arrives while it is being stored. The subquery keeps the locks' name order (it is not
-- flattened and its volatile column is not pruned). An ingest sends it as text with its BEGIN
-- (db.simple): no dollar quoting or block comment here.
SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended($1 || '/' || n, 0))
                      FROM unnest($2::text[]) AS n ORDER BY n) AS locked;

-- name: event_store
-- Store a list of events (all-or-nothing, in one transaction after event_lock_names), skipping ids
-- seen in the last 24 h. Returns each stored event with the functions it triggers (or only function
-- $6: a cron occurrence, or "run function" from the dashboard), the waits it may resolve and the runs
-- it may cancel (cancelOn). event_lock_names ran in an earlier statement,
-- so this statement's snapshot holds every wait committed before the lock. Waits and cancelOn rows
-- are found by fingerprint (migration 0013; docs/architecture.md, "Matching events to waits and
-- cancels"). `fps` is computed once per event as it is stored, and only when something is parked on
-- its name: a one-row index probe per table, which its ORDER BY keeps one (an EXISTS drops ORDER BY
-- and may be planned as a scan). Each fingerprint is one index probe, a LATERAL subquery kept whole
-- by OFFSET 0 so that no statistics (an empty table, one name holding most rows) plan it as a scan of
-- the name's rows. `fps` is NULL for an event with more pairs than are fingerprinted: the second
-- branch then reads every row of the name. `@>` pre-filters (it treats arrays as sets); the exact
-- subset match is checked in Python. `now_ms`: the database clock (epoch ms) flow control decides with,
-- and the time of an event sent without `ts`. The workspace's url, keys and cap, and the clock of a
-- lease of $7 ms taken by this transaction (`ready_at`, `db_now`, `lease_left_ms`), are what the runs
-- it hands straight to a worker start with (engine/flow.py, runs_create).
WITH now AS (
    SELECT (extract(epoch FROM durable_now()) * 1000)::bigint AS ms
), app AS (
    SELECT url, signing_key, previous_signing_key, signature_mode, max_concurrency IS NULL AS handed_off
    FROM apps WHERE id = $1
), input AS (
    SELECT i.ord, i.id, i.name, i.data::jsonb AS data, coalesce(i.ts, (SELECT ms FROM now)) AS ts
    FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS i (id, name, data, ts, ord)
), fresh AS (
    INSERT INTO event_ids AS e (app_id, id, seen_at)
    SELECT DISTINCT ON (id) $1, id, durable_now() FROM input ORDER BY id, ord
    ON CONFLICT (app_id, id) DO UPDATE SET seen_at = EXCLUDED.seen_at
        WHERE e.seen_at < durable_now() - interval '24 hours'
    RETURNING e.id
), stored AS (
    INSERT INTO events (app_id, id, name, data, ts)
    SELECT $1, first.id, first.name, first.data, first.ts
    FROM (SELECT DISTINCT ON (i.id) i.* FROM input i JOIN fresh f ON f.id = i.id ORDER BY i.id, i.ord) AS first
    ORDER BY first.ord
    RETURNING seq, id, name, data, ts,
              CASE WHEN (SELECT true FROM waits w WHERE w.app_id = $1 AND w.event_name = events.name
                         ORDER BY w.match_fp LIMIT 1)
                     OR (SELECT true FROM run_cancels c WHERE c.app_id = $1 AND c.event_name = events.name
                         ORDER BY c.match_fp LIMIT 1)
                   THEN durable_match_fps(data, 256) ELSE '{}' END AS fps
)
SELECT s.seq, s.id, s.name, s.data, s.ts, (SELECT ms FROM now) AS now_ms,
       app.url, app.signing_key, app.previous_signing_key, app.signature_mode,
       coalesce(app.handed_off, false) AS handed_off, durable_now() AS ready_at, clock_timestamp() AS db_now,
       (extract(epoch FROM durable_now() + $7 * interval '1 millisecond' - durable_clock()) * 1000)::int
       AS lease_left_ms,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('id', f.id, 'config', f.config, 'paused', f.paused)
                                  ORDER BY f.id), '[]')
        FROM functions f
        WHERE f.app_id = $1 AND CASE WHEN $6::text IS NULL THEN f.trigger_event = s.name ELSE f.id = $6 END)
       AS functions,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('runId', w.run_id, 'match', w.match)), '[]')
        FROM (SELECT hit.run_id, hit.match
              FROM unnest(s.fps) AS fp (v)
              CROSS JOIN LATERAL (SELECT run_id, match FROM waits
                                  WHERE app_id = $1 AND event_name = s.name AND match_fp = fp.v OFFSET 0) AS hit
              UNION ALL
              SELECT run_id, match FROM waits WHERE s.fps IS NULL AND app_id = $1 AND event_name = s.name) AS w
        WHERE w.match IS NULL OR s.data @> w.match) AS waits,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('runId', c.run_id, 'match', c.match)), '[]')
        FROM (SELECT hit.run_id, hit.match, hit.until
              FROM unnest(s.fps) AS fp (v)
              CROSS JOIN LATERAL (SELECT run_id, match, until FROM run_cancels
                                  WHERE app_id = $1 AND event_name = s.name AND match_fp = fp.v OFFSET 0) AS hit
              UNION ALL
              SELECT run_id, match, until FROM run_cancels
              WHERE s.fps IS NULL AND app_id = $1 AND event_name = s.name) AS c
        WHERE (c.match IS NULL OR s.data @> c.match) AND (c.until IS NULL OR c.until > durable_now())) AS cancels
FROM stored s LEFT JOIN app ON true
ORDER BY s.seq;  -- input order: the first matching event of a list wins a wait

-- name: event_list
SELECT e.seq, e.id, e.name, e.data, e.ts, e.received_at, e.outcomes,
       coalesce((SELECT jsonb_agg(jsonb_build_object('runId', r.id, 'functionId', r.function_id,
                                                     'status', r.status) ORDER BY r.id)
                 FROM runs r WHERE r.app_id = e.app_id AND r.event_id = e.id), '[]') AS runs
FROM events e
WHERE e.app_id = $1 AND ($2::bigint IS NULL OR e.seq < $2)
ORDER BY e.seq DESC
LIMIT $3;

-- name: event_ids_prune
DELETE FROM event_ids WHERE seen_at < durable_now() - interval '24 hours';
