-- The users list sorts by usage on its own copy of the counter, which the
-- usage-history fold brings up to date (Store::refresh_usage_order) and
-- direct changes (resets, edits) write at once. With the sort index on
-- user_traffic itself, every collection moved each of its users in that
-- index: about 40 % of applying a 100,000-user batch. Without it, and with
-- room left in each page, the counters' updates are HOT: no index is touched.
CREATE TABLE user_traffic_order (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    used_traffic BIGINT NOT NULL DEFAULT 0
);
INSERT INTO user_traffic_order (user_id, used_traffic)
SELECT user_id, used_traffic FROM user_traffic;
CREATE INDEX user_traffic_order_used ON user_traffic_order (used_traffic, user_id);
DROP INDEX user_traffic_used_traffic;
-- Half of each page free: a collection's new row versions fit beside the old.
ALTER TABLE user_traffic SET (fillfactor = 50);

CREATE OR REPLACE FUNCTION user_traffic_create() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_traffic (user_id) VALUES (NEW.id);
    INSERT INTO user_traffic_order (user_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
