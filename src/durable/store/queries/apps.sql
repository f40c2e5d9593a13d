-- name: app_provision
-- Create the workspace (name × environment) or return the existing one, with its signing key. prod
-- workspaces are v2-only from creation; dev and acc start in compat mode (v1 accepted too).
WITH ins AS (
    INSERT INTO apps (id, name, environment, signing_key, signature_mode)
    VALUES ($1, $2, $3, $4, CASE WHEN $3 = 'prod' THEN 'v2' ELSE 'compat' END)
    ON CONFLICT (name, environment) DO NOTHING
    RETURNING id, name, environment, signing_key, url, created_at, synced_at, signature_mode
)
SELECT * FROM ins
UNION ALL
SELECT id, name, environment, signing_key, url, created_at, synced_at, signature_mode
FROM apps WHERE name = $2 AND environment = $3
LIMIT 1;

-- name: app_get
-- One workspace with its keys and signature mode (for verifying and signing, never for a listing).
SELECT id, name, environment, signing_key, previous_signing_key, signature_mode, url, created_at, synced_at
FROM apps WHERE id = $1;

-- name: app_list
-- Every workspace without its keys: whether one is being rotated is shown, the keys never.
SELECT a.id, a.name, a.environment, a.url, a.created_at, a.synced_at, a.signature_mode,
       a.previous_signing_key IS NOT NULL AS rotating,
       (SELECT count(*) FROM functions f WHERE f.app_id = a.id) AS function_count
FROM apps a
ORDER BY a.name, a.environment;

-- name: app_rotate_key
-- Start a rotation: $2 becomes the key, the current one the previous key (still accepted, and the one
-- the engine signs with until it is removed). No row when the app is missing or already rotating.
UPDATE apps SET previous_signing_key = signing_key, signing_key = $2
WHERE id = $1 AND previous_signing_key IS NULL
RETURNING id, signing_key, signature_mode;

-- name: app_drop_previous_key
-- End a rotation: the previous key stops working and the engine signs with the current key. Returns
-- whether a previous key was removed (no row: no such app).
UPDATE apps a SET previous_signing_key = NULL
FROM (SELECT id, previous_signing_key IS NOT NULL AS had FROM apps WHERE id = $1 FOR UPDATE) old
WHERE a.id = old.id
RETURNING old.had AS removed;

-- name: app_update_settings
-- Change a workspace's settings in one statement: the signature mode ($2: 'compat' accepts v1 or v2,
-- 'v2' only v2; unchanged when null) and, when $3, the cap on its runs executing at once ($4, null for
-- none). No row: no such app.
UPDATE apps
SET signature_mode = coalesce($2, signature_mode),
    max_concurrency = CASE WHEN $3 THEN $4::int ELSE max_concurrency END
WHERE id = $1
RETURNING id, signature_mode, max_concurrency;

-- name: app_set_url
UPDATE apps SET url = $2, synced_at = now() WHERE id = $1;

-- name: health_check
SELECT 1;
