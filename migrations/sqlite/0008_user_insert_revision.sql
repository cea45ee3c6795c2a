-- A user inserted under the next revision moves the counter with it, so on
-- SQLite creating a user is one statement, its own transaction: SQLite takes
-- the write lock when the statement starts, before the VALUES read the
-- counter, so no other write can slip in between. Inserts under the current
-- revision (a bulk insert that bumped it first) leave the counter alone.
CREATE TRIGGER users_insert_advances_revision AFTER INSERT ON users
WHEN NEW.revision > (SELECT value FROM revision WHERE id = 1)
BEGIN
    UPDATE revision SET value = NEW.revision WHERE id = 1;
END;
