-- Lifecycle state the domain rules need, and indexes for the users list
-- (each with the id, the list's tiebreak, so a page is an index range).

-- Marzban's next_plan object, as JSON; NULL when none.
ALTER TABLE users ADD COLUMN next_plan TEXT;
-- When the status last changed (auto-deletion counts from it).
ALTER TABLE users ADD COLUMN last_status_change BIGINT;
-- When usage was last reset (periodic reset strategies count from it).
ALTER TABLE users ADD COLUMN last_usage_reset_at BIGINT;

CREATE INDEX users_used_traffic ON users (used_traffic, id);
CREATE INDEX users_created_at ON users (created_at, id);
CREATE INDEX users_expire ON users (expire, id);
CREATE INDEX users_data_limit ON users (data_limit, id);
CREATE INDEX users_status ON users (status, id);
CREATE INDEX node_user_usages_hour ON node_user_usages (hour);
