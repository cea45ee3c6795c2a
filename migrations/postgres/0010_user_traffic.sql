-- The counters every usage collection changes live in their own narrow table.
-- Updating them on the wide users row made a new row version and an entry in
-- each of its dozen indexes: a collection of 100,000 users took 15 s. Here an
-- update writes a short row and one index (the one the list sorts on).
CREATE TABLE user_traffic (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    used_traffic BIGINT NOT NULL DEFAULT 0,
    lifetime_used_traffic BIGINT NOT NULL DEFAULT 0,
    online_at BIGINT
) WITH (fillfactor = 70);
INSERT INTO user_traffic (user_id, used_traffic, lifetime_used_traffic, online_at)
SELECT id, used_traffic, lifetime_used_traffic, online_at FROM users;
CREATE INDEX user_traffic_used_traffic ON user_traffic (used_traffic, user_id);

-- Every user has its counters row from its first moment.
CREATE FUNCTION user_traffic_create() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_traffic (user_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER user_traffic_insert AFTER INSERT ON users
FOR EACH ROW EXECUTE FUNCTION user_traffic_create();

-- Online counts are taken in the background (see Store::online_users): no
-- index has to follow online_at on every collection.
DROP INDEX users_used_traffic;
DROP INDEX users_online_at;
DROP INDEX users_admin_online_at;
ALTER TABLE users DROP COLUMN used_traffic, DROP COLUMN lifetime_used_traffic,
    DROP COLUMN online_at;

-- Usage history of collections not yet folded into node_user_usages: one row
-- per collection, written in the collection's transaction. Folding (merging
-- many collections into one upsert per user, node and hour) happens off the
-- ingestion path and before any history is read.
CREATE TABLE usage_pending (
    id BIGSERIAL PRIMARY KEY,
    node_id BIGINT NOT NULL,
    -- JSON: [[user_id, hour, bytes], ...]
    deltas TEXT NOT NULL
);
