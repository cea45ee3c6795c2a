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
-- users without an owner. Only the trigger below writes it.
CREATE TABLE user_counts (
    admin_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (admin_id, status)
);
INSERT INTO user_counts (admin_id, status, n)
SELECT COALESCE(admin_id, 0), status, COUNT(*) FROM users GROUP BY COALESCE(admin_id, 0), status;

-- Every writer of user_counts takes one transaction-scoped lock first: a
-- statement that moves users between several (admin, status) rows can then
-- never deadlock with another doing the opposite.
CREATE FUNCTION user_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7541060519);
    IF TG_OP = 'UPDATE' OR TG_OP = 'DELETE' THEN
        UPDATE user_counts SET n = n - 1
        WHERE admin_id = COALESCE(OLD.admin_id, 0) AND status = OLD.status;
    END IF;
    IF TG_OP = 'UPDATE' OR TG_OP = 'INSERT' THEN
        INSERT INTO user_counts (admin_id, status, n)
        VALUES (COALESCE(NEW.admin_id, 0), NEW.status, 1)
        ON CONFLICT (admin_id, status) DO UPDATE SET n = user_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_counts_insert_delete AFTER INSERT OR DELETE ON users
FOR EACH ROW EXECUTE FUNCTION user_counts_follow();

-- Also fires for the admin_id = NULL an admin's deletion sets.
CREATE TRIGGER user_counts_update AFTER UPDATE OF status, admin_id ON users
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.admin_id IS DISTINCT FROM NEW.admin_id)
EXECUTE FUNCTION user_counts_follow();

-- TRUNCATE fires no row triggers.
CREATE FUNCTION user_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7541060519);
    DELETE FROM user_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_counts_truncate AFTER TRUNCATE ON users
FOR EACH STATEMENT EXECUTE FUNCTION user_counts_clear();

-- "Online in the last 24 hours" is an index range count, overall or per owner.
CREATE INDEX users_online_at ON users (online_at);
CREATE INDEX users_admin_online_at ON users (admin_id, online_at);
