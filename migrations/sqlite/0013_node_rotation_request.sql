-- A certificate rotation asked for from outside the daemon (`nexpoint certs
-- rotate`): the node's task carries it out at its next pass and clears it.
-- It holds when it was asked for, so a request made while a rotation runs
-- is not cleared by that rotation.
ALTER TABLE nodes ADD COLUMN rotation_requested_at BIGINT;
