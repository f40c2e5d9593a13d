-- name: embedded_password_statement
-- The ALTER ROLE that gives the embedded Postgres superuser its password (store/embedded.py, upgrading
-- a trust-auth data directory): a utility statement takes no parameters, so %L quotes $1 into it.
SELECT format('ALTER ROLE postgres PASSWORD %L', $1::text);
