-- name: changes_notify
-- Publish coalesced change messages (one per app) to the dashboard's listeners.
SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p;
