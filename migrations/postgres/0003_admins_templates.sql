-- User templates (Marzban's /api/user_template): presets a panel or bot
-- applies when it creates users.

CREATE TABLE user_templates (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    -- Names are unique case-insensitively, like usernames.
    name_lower TEXT NOT NULL UNIQUE,
    data_limit BIGINT,
    expire_duration BIGINT,
    username_prefix TEXT,
    username_suffix TEXT,
    -- JSON {protocol: [inbound tags]}; {} means every inbound.
    inbounds TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
