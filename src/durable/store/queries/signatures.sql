-- name: signature_nonce_record
-- Record an accepted v2 nonce of an app's request, or fail with a unique_violation of
-- signature_nonces_pkey when the same (app, nonce) was accepted within the last 10 minutes (a replay;
-- migration 0015). A concurrent insert of the same nonce waits for the first transaction: one of the
-- two is the replay. An ingest sends it as text with its BEGIN (db.simple): no dollar quoting here.
SELECT durable_nonce_record($1, $2);

-- name: signature_nonces_prune
-- Forget nonces accepted more than 10 minutes ago: a signature that old is refused as stale anyway.
DELETE FROM signature_nonces WHERE seen_at < now() - interval '10 minutes';
