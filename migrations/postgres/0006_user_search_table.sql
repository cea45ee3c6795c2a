-- Search keeps its own table. Every usage write updates users.used_traffic,
-- an indexed column, so each is a non-HOT update that would also insert into
-- trigram indexes on users (and fill their pending lists, which every search
-- then scans). Here the trigram indexes change only when a username or note
-- does.
CREATE TABLE user_search (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    username_lower TEXT NOT NULL,
    note TEXT
);
INSERT INTO user_search (user_id, username_lower, note)
SELECT id, username_lower, note FROM users;
CREATE INDEX user_search_username_trgm ON user_search USING gin (username_lower gin_trgm_ops);
CREATE INDEX user_search_note_trgm ON user_search USING gin (note gin_trgm_ops);
DROP INDEX users_username_trgm;
DROP INDEX users_note_trgm;

CREATE FUNCTION user_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO user_search (user_id, username_lower, note)
        VALUES (NEW.id, NEW.username_lower, NEW.note);
    ELSE
        UPDATE user_search SET username_lower = NEW.username_lower, note = NEW.note
        WHERE user_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_search_insert AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION user_search_sync();
CREATE TRIGGER user_search_update AFTER UPDATE OF username_lower, note ON users
    FOR EACH ROW
    WHEN (OLD.username_lower IS DISTINCT FROM NEW.username_lower OR OLD.note IS DISTINCT FROM NEW.note)
    EXECUTE FUNCTION user_search_sync();
