-- When time alone next changes a user (expiry, hold timeout, periodic reset,
-- a next plan waiting for its expiry); NULL when only traffic or an admin
-- can. Every write of a user's lifecycle keeps it, so the lifecycle clock
-- finds the users due at a second on this index instead of scanning them all.
ALTER TABLE users ADD COLUMN deadline BIGINT;
CREATE INDEX users_deadline ON users (deadline) WHERE deadline IS NOT NULL;
-- Rows written before the column existed are looked at once, right away,
-- and get their real deadline then.
UPDATE users SET deadline = 0 WHERE status <> 'disabled';
