-- The counters every usage collection changes live in their own narrow table.
-- Updating them on the wide users row rewrote that row and moved it in every
-- index it has: a collection of 100,000 users took seconds. Here an update
-- touches a short row and one index (the one the list sorts on).
CREATE TABLE user_traffic (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    used_traffic BIGINT NOT NULL DEFAULT 0,
    lifetime_used_traffic BIGINT NOT NULL DEFAULT 0,
    online_at BIGINT
);
INSERT INTO user_traffic (user_id, used_traffic, lifetime_used_traffic, online_at)
SELECT id, used_traffic, lifetime_used_traffic, online_at FROM users;
CREATE INDEX user_traffic_used_traffic ON user_traffic (used_traffic, user_id);

-- Every user has its counters row from its first moment.
CREATE TRIGGER user_traffic_insert AFTER INSERT ON users
BEGIN
    INSERT INTO user_traffic (user_id) VALUES (NEW.id);
END;

-- Online counts are taken in the background (see Store::online_users): no
-- index has to follow online_at on every collection.
DROP INDEX users_used_traffic;
DROP INDEX users_online_at;
DROP INDEX users_admin_online_at;
ALTER TABLE users DROP COLUMN used_traffic;
ALTER TABLE users DROP COLUMN lifetime_used_traffic;
ALTER TABLE users DROP COLUMN online_at;

-- Usage history of collections not yet folded into node_user_usages: one row
-- per collection, written in the collection's transaction. Folding (merging
-- many collections into one upsert per user, node and hour) happens off the
-- ingestion path and before any history is read.
CREATE TABLE usage_pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id BIGINT NOT NULL,
    -- JSON: [[user_id, hour, bytes], ...]
    deltas TEXT NOT NULL
);
