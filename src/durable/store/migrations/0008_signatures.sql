-- Signatures v2 (docs/protocol.md, "Signing"): a workspace's signature mode, a second key while a key
-- is rotated, and the nonces of accepted signed requests (replay refusal).
--
-- signature_mode: 'compat' accepts the seed's v1 signature or v2; 'v2' refuses v1. prod workspaces are
-- v2-only from creation (app_provision), dev and acc start in compat; existing rows follow the same
-- rule by environment. The column default is the safe one.
--
-- previous_signing_key: set by a rotation (the key before it), cleared when removed. While it is set
-- both keys are accepted and the engine signs with it (apps move to the new key at their pace).

ALTER TABLE apps
    ADD COLUMN signature_mode text NOT NULL DEFAULT 'compat'
        CHECK (signature_mode IN ('compat', 'v2')),
    ADD COLUMN previous_signing_key text;

UPDATE apps SET signature_mode = 'v2' WHERE environment = 'prod';

ALTER TABLE apps ALTER COLUMN signature_mode SET DEFAULT 'v2';

-- One row per accepted v2 nonce of an app's request (POST /e, POST /fn/sync). A nonce seen within the
-- last 10 minutes is a replay; older rows are pruned by the maintenance loop (signature_nonces_prune).
-- Real time (now()), not the movable durable_now(): signature times are the senders' wall clocks.
-- No foreign key to apps: every POST /e inserts here, and the key-share lock an FK check takes on the
-- app's row would make concurrent requests of one app share multixacts; rows outlive nothing but
-- their 10 minutes.
CREATE TABLE signature_nonces (
    app_id  text NOT NULL,
    nonce   text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, nonce)
);

CREATE INDEX signature_nonces_seen_at ON signature_nonces (seen_at);
