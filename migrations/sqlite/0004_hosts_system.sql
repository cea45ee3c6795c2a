-- Hosts carry the rest of Marzban's ProxyHost fields; user counts per owner
-- and status are kept exact by triggers so GET /api/system never scans users.

-- "" means the client's default for alpn and fingerprint, as in Marzban.
ALTER TABLE hosts ADD COLUMN alpn TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
-- NULL: the client's default.
ALTER TABLE hosts ADD COLUMN allowinsecure BIGINT;
ALTER TABLE hosts ADD COLUMN mux_enable BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN fragment_setting TEXT;
ALTER TABLE hosts ADD COLUMN noise_setting TEXT;
ALTER TABLE hosts ADD COLUMN random_user_agent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN use_sni_as_host BIGINT NOT NULL DEFAULT 0;

-- How many users each admin owns in each status; admin_id 0 stands for
-- users without an owner. Only the triggers below write it. (No INSERT OR
-- IGNORE in them: an outer statement's conflict policy would override it.)
CREATE TABLE user_counts (
    admin_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (admin_id, status)
);
INSERT INTO user_counts (admin_id, status, n)
SELECT COALESCE(admin_id, 0), status, COUNT(*) FROM users GROUP BY COALESCE(admin_id, 0), status;

CREATE TRIGGER user_counts_insert AFTER INSERT ON users
BEGIN
    INSERT INTO user_counts (admin_id, status, n)
    SELECT COALESCE(NEW.admin_id, 0), NEW.status, 0
    WHERE NOT EXISTS (SELECT 1 FROM user_counts
                      WHERE admin_id = COALESCE(NEW.admin_id, 0) AND status = NEW.status);
    UPDATE user_counts SET n = n + 1
    WHERE admin_id = COALESCE(NEW.admin_id, 0) AND status = NEW.status;
END;

CREATE TRIGGER user_counts_delete AFTER DELETE ON users
BEGIN
    UPDATE user_counts SET n = n - 1
    WHERE admin_id = COALESCE(OLD.admin_id, 0) AND status = OLD.status;
END;

-- Also fires for the admin_id = NULL an admin's deletion sets.
CREATE TRIGGER user_counts_update AFTER UPDATE OF status, admin_id ON users
WHEN OLD.status IS NOT NEW.status OR OLD.admin_id IS NOT NEW.admin_id
BEGIN
    UPDATE user_counts SET n = n - 1
    WHERE admin_id = COALESCE(OLD.admin_id, 0) AND status = OLD.status;
    INSERT INTO user_counts (admin_id, status, n)
    SELECT COALESCE(NEW.admin_id, 0), NEW.status, 0
    WHERE NOT EXISTS (SELECT 1 FROM user_counts
                      WHERE admin_id = COALESCE(NEW.admin_id, 0) AND status = NEW.status);
    UPDATE user_counts SET n = n + 1
    WHERE admin_id = COALESCE(NEW.admin_id, 0) AND status = NEW.status;
END;

-- "Online in the last 24 hours" is an index range count, overall or per owner.
CREATE INDEX users_online_at ON users (online_at);
CREATE INDEX users_admin_online_at ON users (admin_id, online_at);
