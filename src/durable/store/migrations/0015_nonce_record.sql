-- Recording a request's v2 nonce in a statement that needs no answer read (issue 13). An ingest sends
-- it as text in the message that opens its transaction (with its event-name locks), so a request signed
-- v2, as every SDK signs it, costs no round trip more than one signed v1. A replay must then fail the
-- statement instead of returning no row: the error is a unique_violation of signature_nonces' key,
-- which the engine answers as a refused replay (engine/nonces.py). Same rule as before: a nonce
-- accepted within the last 10 minutes is a replay; an older row is taken over (it is forgotten).
CREATE FUNCTION durable_nonce_record(p_app_id text, p_nonce text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO signature_nonces AS s (app_id, nonce, seen_at) VALUES (p_app_id, p_nonce, now())
    ON CONFLICT (app_id, nonce) DO UPDATE SET seen_at = now()
        WHERE s.seen_at < now() - interval '10 minutes';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'nonce % of app % was accepted in the last 10 minutes (a replay)', p_nonce, p_app_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'signature_nonces_pkey';
    END IF;
END
$fn$;
