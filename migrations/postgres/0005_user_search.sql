-- Substring search over usernames and notes without scanning the users
-- table: trigram GIN indexes (pg_trgm is a trusted extension since
-- PostgreSQL 13, so the database owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_username_trgm ON users USING gin (username_lower gin_trgm_ops);
CREATE INDEX users_note_trgm ON users USING gin (note gin_trgm_ops);
