-- name: cron_delete_missing
-- A sync keeps schedules only for the app's cron functions.
DELETE FROM cron_schedules WHERE app_id = $1 AND NOT (function_id = ANY($2::text[]));

-- name: cron_upsert
-- New schedules start at their next occurrence; a changed expression reschedules; an unchanged one
-- keeps its next occurrence.
INSERT INTO cron_schedules AS c (app_id, function_id, expr, next_at)
SELECT $1, i.function_id, i.expr, i.next_at
FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS i (function_id, expr, next_at)
ON CONFLICT (app_id, function_id) DO UPDATE SET expr = EXCLUDED.expr, next_at = EXCLUDED.next_at
WHERE c.expr <> EXCLUDED.expr;

-- name: cron_due
-- Due occurrences, locked so that each fires in exactly one engine process (SKIP LOCKED: another
-- process holding one is firing it).
SELECT c.app_id, c.function_id, c.expr, c.next_at, durable_now() AS now
FROM cron_schedules c
WHERE c.next_at <= durable_now()
ORDER BY c.next_at
LIMIT $1
FOR UPDATE OF c SKIP LOCKED;

-- name: cron_advance
UPDATE cron_schedules SET next_at = $3 WHERE app_id = $1 AND function_id = $2;

-- name: cron_next
-- Milliseconds until the earliest schedule is due (negative: overdue; null: none), on the database clock.
SELECT extract(epoch FROM min(next_at) - durable_clock()) * 1000 AS ms FROM cron_schedules;
