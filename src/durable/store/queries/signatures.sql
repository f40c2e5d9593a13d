-- name: signature_nonce_record
-- Record an accepted v2 nonce of an app's request; no row back when the same (app, nonce) was accepted
-- within the last 10 minutes (a replay). An older row is taken over: that nonce is no longer remembered.
-- A concurrent insert of the same nonce waits for the first transaction: one of the two is the replay.
INSERT INTO signature_nonces AS s (app_id, nonce, seen_at)
VALUES ($1, $2, now())
ON CONFLICT (app_id, nonce) DO UPDATE SET seen_at = now()
    WHERE s.seen_at < now() - interval '10 minutes'
RETURNING 1 AS recorded;

-- name: signature_nonces_prune
-- Forget nonces accepted more than 10 minutes ago: a signature that old is refused as stale anyway.
DELETE FROM signature_nonces WHERE seen_at < now() - interval '10 minutes';
