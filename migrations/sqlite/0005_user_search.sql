-- Substring search over usernames and notes without scanning the users
-- table: an FTS5 trigram index kept in step with users by triggers.
CREATE VIRTUAL TABLE users_search USING fts5(
    username_lower, note,
    content = 'users', content_rowid = 'id',
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO users_search (users_search) VALUES ('rebuild');

CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_search (rowid, username_lower, note)
    VALUES (new.id, new.username_lower, new.note);
END;

CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_search (users_search, rowid, username_lower, note)
    VALUES ('delete', old.id, old.username_lower, old.note);
END;

CREATE TRIGGER users_search_update AFTER UPDATE OF username_lower, note ON users BEGIN
    INSERT INTO users_search (users_search, rowid, username_lower, note)
    VALUES ('delete', old.id, old.username_lower, old.note);
    INSERT INTO users_search (rowid, username_lower, note)
    VALUES (new.id, new.username_lower, new.note);
END;
