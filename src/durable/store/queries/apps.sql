-- name: app_provision
-- Create the workspace (name × environment) or return the existing one, with its signing key.
WITH ins AS (
    INSERT INTO apps (id, name, environment, signing_key)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (name, environment) DO NOTHING
    RETURNING id, name, environment, signing_key, url, created_at, synced_at
)
SELECT * FROM ins
UNION ALL
SELECT id, name, environment, signing_key, url, created_at, synced_at
FROM apps WHERE name = $2 AND environment = $3
LIMIT 1;

-- name: app_get
SELECT id, name, environment, signing_key, url, created_at, synced_at FROM apps WHERE id = $1;

-- name: app_list
SELECT a.id, a.name, a.environment, a.url, a.created_at, a.synced_at,
       (SELECT count(*) FROM functions f WHERE f.app_id = a.id) AS function_count
FROM apps a
ORDER BY a.name, a.environment;

-- name: app_set_url
UPDATE apps SET url = $2, synced_at = now() WHERE id = $1;

-- name: health_check
SELECT 1;
