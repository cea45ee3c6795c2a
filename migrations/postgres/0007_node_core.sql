-- What a node reports about its core beyond Marzban's fields.
ALTER TABLE nodes ADD COLUMN core_restarts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN core_started_at BIGINT;
-- A node's own core config template; NULL runs the default one. The revision
-- is the one that set it, so node tasks notice the change like any other.
ALTER TABLE nodes ADD COLUMN core_config TEXT;
ALTER TABLE nodes ADD COLUMN core_config_revision BIGINT;
-- Certificate rotation: the certificate signed for the node's next key is
-- pinned beside the current one until the node serves it.
ALTER TABLE nodes ADD COLUMN next_certificate_pem TEXT;
ALTER TABLE nodes ADD COLUMN next_certificate_fingerprint TEXT;
ALTER TABLE nodes ADD COLUMN next_certificate_not_after BIGINT;
