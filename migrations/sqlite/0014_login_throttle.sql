-- Failed sign-ins, counted per key rather than per account so that an email without an account is
-- slowed exactly like one with: the key is the SHA-256 of the lowercased email (every source) or of
-- the email and the client's address. Rows are written only on failures, cleared by a success, and
-- forgotten a day after their last failure. The users table's failed_logins and locked_until are no
-- longer written (a hard lockout let anyone lock an owner out). Kept in step with
-- ../postgres/0014_login_throttle.sql.
CREATE TABLE login_throttle (
    key           TEXT    PRIMARY KEY,
    failures      INTEGER NOT NULL,
    blocked_until INTEGER,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX login_throttle_updated ON login_throttle (updated_at);
