-- SQLite's 0008 lets a user insert advance the revision counter by trigger,
-- which is safe there because it has one writer. PostgreSQL keeps bumping
-- the counter in the inserting transaction (the row lock orders writers).
-- Kept so both backends share version numbers.
SELECT 1;
