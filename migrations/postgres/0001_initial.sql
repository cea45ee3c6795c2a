-- Timestamps are unix seconds (BIGINT) in both backends; JSON documents are TEXT.

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row. Every write that changes what a core must contain bumps it in the
-- same transaction (see ARCHITECTURE: desired state, not commands).
CREATE TABLE revision (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE admins (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL,
    username_lower TEXT NOT NULL UNIQUE,
    hashed_password TEXT NOT NULL,
    is_sudo BIGINT NOT NULL DEFAULT 0,
    password_reset_at BIGINT,
    telegram_id BIGINT,
    discord_webhook TEXT,
    users_usage BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL,
    username_lower TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    proxies TEXT NOT NULL,
    excluded_inbounds TEXT NOT NULL DEFAULT '{}',
    used_traffic BIGINT NOT NULL DEFAULT 0,
    lifetime_used_traffic BIGINT NOT NULL DEFAULT 0,
    data_limit BIGINT,
    data_limit_reset_strategy TEXT NOT NULL DEFAULT 'no_reset',
    expire BIGINT,
    note TEXT,
    admin_id BIGINT REFERENCES admins (id) ON DELETE SET NULL,
    on_hold_expire_duration BIGINT,
    on_hold_timeout BIGINT,
    auto_delete_in_days BIGINT,
    sub_revoked_at BIGINT,
    sub_updated_at BIGINT,
    sub_last_user_agent TEXT,
    online_at BIGINT,
    created_at BIGINT NOT NULL,
    edit_at BIGINT,
    -- The revision of the last change that affects cores.
    revision BIGINT NOT NULL
);
CREATE INDEX users_revision ON users (revision);
CREATE INDEX users_admin ON users (admin_id);

-- Users removed from the desired state by deletion; lets a node catch up with
-- a change set instead of a snapshot.
CREATE TABLE user_tombstones (
    revision BIGINT NOT NULL,
    email TEXT NOT NULL
);
CREATE INDEX user_tombstones_revision ON user_tombstones (revision);

CREATE TABLE nodes (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    name_lower TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    port BIGINT NOT NULL,
    api_port BIGINT NOT NULL,
    usage_coefficient DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    status TEXT NOT NULL DEFAULT 'connecting',
    message TEXT,
    core_kind TEXT,
    xray_version TEXT,
    agent_version TEXT,
    last_seen_at BIGINT,
    enrollment_token_hash TEXT UNIQUE,
    enrollment_expires_at BIGINT,
    certificate_pem TEXT,
    certificate_fingerprint TEXT,
    certificate_not_after BIGINT,
    -- Last journal sequence whose usage is committed; stored with that usage.
    usage_sequence BIGINT NOT NULL DEFAULT 0,
    uplink BIGINT NOT NULL DEFAULT 0,
    downlink BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE hosts (
    id BIGSERIAL PRIMARY KEY,
    inbound_tag TEXT NOT NULL,
    remark TEXT NOT NULL,
    address TEXT NOT NULL,
    port BIGINT,
    sni TEXT,
    host TEXT,
    path TEXT,
    security TEXT NOT NULL DEFAULT 'inbound_default',
    is_disabled BIGINT NOT NULL DEFAULT 0,
    node_id BIGINT REFERENCES nodes (id) ON DELETE CASCADE,
    position BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX hosts_tag ON hosts (inbound_tag);

CREATE TABLE node_user_usages (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- No foreign key: usage history outlives a deleted node.
    node_id BIGINT NOT NULL,
    -- Unix seconds of the start of the hour.
    hour BIGINT NOT NULL,
    used_traffic BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, node_id, hour)
);
