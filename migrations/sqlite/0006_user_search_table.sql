-- PostgreSQL moves its trigram indexes to a table of their own in this
-- version; SQLite's FTS5 index (0005) already is one. Kept so both
-- backends share version numbers.
SELECT 1;
