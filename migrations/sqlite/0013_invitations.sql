-- Invitations: how a tenant's admins add a person. Adding someone creates no access; the person
-- accepts with the code (signed in to the account of that email, or by choosing a password when
-- the email has no account yet). The code is stored as its SHA-256 only. Kept in step with
-- ../postgres/0013_invitations.sql (SQLite has no 0012: that one changed PostgreSQL only).
CREATE TABLE invitations (
    id           INTEGER PRIMARY KEY,
    tenant_id    INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Lowercased.
    email        TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    display_name TEXT,
    code_hash    TEXT    NOT NULL UNIQUE,
    -- The audit log's actor label of who invited (`user:<email>`, `cli`).
    invited_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    accepted_at  INTEGER,
    accepted_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    revoked_at   INTEGER
);
CREATE INDEX invitations_tenant ON invitations (tenant_id, id);
