-- name: function_delete_missing
-- A sync makes the function set exactly the given list: drop those not in it.
DELETE FROM functions WHERE app_id = $1 AND NOT (id = ANY($2::text[]));

-- name: function_upsert
INSERT INTO functions (app_id, id, name, trigger_event, trigger_cron, config)
SELECT $1, f.id, f.name, f.trigger_event, f.trigger_cron, f.config::jsonb
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
     AS f (id, name, trigger_event, trigger_cron, config)
ON CONFLICT (app_id, id) DO UPDATE
SET name = EXCLUDED.name, trigger_event = EXCLUDED.trigger_event, trigger_cron = EXCLUDED.trigger_cron,
    config = EXCLUDED.config, updated_at = now();

-- name: function_list
SELECT id, name, trigger_event, trigger_cron, config, updated_at, paused
FROM functions WHERE app_id = $1 ORDER BY id;

-- name: function_get
SELECT id, name, trigger_event, trigger_cron, config FROM functions WHERE app_id = $1 AND id = $2;

-- name: functions_triggered
-- What an event of each name starts (durable_triggered): read by an ingest the first time it meets the
-- name (engine/ingest.py, Triggers).
SELECT n AS name, durable_triggered($1, n) AS functions FROM unnest($2::text[]) AS n;
