-- The notification outbox (issue 7). A notification is written in the same
-- transaction as the change that caused it, so a crash neither loses nor
-- invents one.

-- One row. Notification ids come from this counter, not from a sequence:
-- the row stays locked until the writing transaction ends, so ids are
-- handed out in commit order and a reader that has seen id N will never see
-- a smaller one commit later. A sequence (BIGSERIAL) would let a reader
-- advance a cursor past an id whose transaction had not committed yet.
CREATE TABLE notification_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO notification_seq (id, value) VALUES (1, 0);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    created_at BIGINT NOT NULL,
    -- user_created, node_connected, login_failed, ... (domain::Action).
    action TEXT NOT NULL,
    -- A username, an admin's or a node's name.
    subject TEXT NOT NULL,
    -- The owner of the user the notification is about: its admin's own
    -- Telegram chat and Discord webhook receive it too.
    admin_id BIGINT,
    -- Built when the change happened; later changes never alter it.
    payload TEXT NOT NULL
);
CREATE INDEX notifications_admin ON notifications (admin_id, id) WHERE admin_id IS NOT NULL;

-- Per destination (a webhook address, a Telegram chat, a Discord webhook):
-- everything up to `last_id` was delivered; the next batch is retried at
-- `next_attempt_at` after `attempts` failures.
CREATE TABLE notification_cursors (
    destination TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    last_delivered_at BIGINT,
    updated_at BIGINT NOT NULL
);

-- Reminders already sent: one per (user, kind, threshold) until the
-- condition resets (usage reset or limit raised, expiry extended).
CREATE TABLE user_reminders (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, kind, threshold)
);
