-- name: migrations_lock
-- Serialise concurrent `migrate` calls from several processes.
SELECT pg_advisory_xact_lock(7408310011);

-- name: migrations_table
CREATE TABLE IF NOT EXISTS durable_migrations (
    version     int PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: migrations_applied
SELECT version FROM durable_migrations ORDER BY version;

-- name: migrations_record
INSERT INTO durable_migrations (version, name) VALUES ($1, $2);
