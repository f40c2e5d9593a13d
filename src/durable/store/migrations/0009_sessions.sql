-- Dashboard sign-in sessions (api/auth.py). The cookie holds a random session id; only its SHA-256 is
-- stored, so a database reader cannot sign in with what it reads.
--
-- token_hash binds the session to the admin token it was opened with (a key derived from the token,
-- never the token): after DURABLE_ADMIN_TOKEN changes, no old session matches and all are refused.
-- expires_at is on the database clock (durable_now()); an expired row is refused at once and deleted
-- by the maintenance loop (sessions_prune). Sign-out deletes the row, so a captured cookie stops working.
CREATE TABLE admin_sessions (
    id_hash    bytea PRIMARY KEY,
    token_hash bytea NOT NULL,
    client     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT durable_now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX admin_sessions_expires_at ON admin_sessions (expires_at);
