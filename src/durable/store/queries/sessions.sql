-- name: session_create
-- Open a dashboard session: $1 hash of the session id, $2 token binding, $3 client address, $4 TTL in ms.
INSERT INTO admin_sessions (id_hash, token_hash, client, expires_at)
VALUES ($1, $2, $3, durable_now() + $4::bigint * interval '1 millisecond');

-- name: session_valid
-- Whether a session id hash is live and bound to the current admin token (unexpired on the DB clock).
SELECT EXISTS (
    SELECT 1 FROM admin_sessions
    WHERE id_hash = $1 AND token_hash = $2 AND expires_at > durable_now()
);

-- name: session_delete
-- Sign-out: forget the session, so its cookie no longer signs anyone in.
DELETE FROM admin_sessions WHERE id_hash = $1;

-- name: sessions_prune
-- Maintenance: delete sessions past their expiry (they are already refused by session_valid).
DELETE FROM admin_sessions WHERE expires_at <= durable_now();
