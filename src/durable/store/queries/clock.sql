-- name: clock_set
-- For tests: move the database clock (durable_now(), durable_clock()) to $1 ms off real time, for every
-- connection to this database (migration 0007).
SELECT durable_set_clock_offset($1);

-- name: clock_now_ms
-- The database clock in epoch milliseconds, for decisions made in Python (cron's next occurrence at
-- sync, a rerun's flow-control window).
SELECT (extract(epoch FROM durable_now()) * 1000)::bigint AS now_ms;
