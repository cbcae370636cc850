-- Users, their roles per tenant, sessions (refresh-token families), the keys that sign access
-- tokens, and the audit log. Kept in step with ../postgres/0005_access.sql.
CREATE TABLE users (
    id                   INTEGER PRIMARY KEY,
    -- Lowercased; unique across the deployment.
    email                TEXT    NOT NULL UNIQUE,
    display_name         TEXT    NOT NULL,
    -- argon2id in PHC form; NULL for users who sign in through SSO only.
    password_hash        TEXT,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    -- Platform-wide rights: run the deployment (tenants, users), publish to the marketplace.
    is_operator          INTEGER NOT NULL DEFAULT 0,
    is_publisher         INTEGER NOT NULL DEFAULT 0,
    failed_logins        INTEGER NOT NULL DEFAULT 0,
    locked_until         INTEGER,
    created_at           INTEGER NOT NULL,
    last_login_at        INTEGER
);

CREATE TABLE memberships (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, tenant_id)
);
CREATE INDEX memberships_tenant ON memberships (tenant_id);

-- One row per refresh token issued; a family is one login session. Using a token marks it used
-- and issues its successor; presenting a used token again revokes the whole family.
CREATE TABLE refresh_tokens (
    id         INTEGER PRIMARY KEY,
    family     TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- HMAC keys for access tokens, shared by every replica; the newest signs, all verify until retired.
CREATE TABLE signing_keys (
    kid        TEXT    PRIMARY KEY,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- Append-only: nothing updates or deletes rows (retention aside).
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    -- NULL for deployment-wide actions (users, operators).
    tenant_id INTEGER,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT,
    source    TEXT,
    outcome   TEXT    NOT NULL,
    before    TEXT,
    after     TEXT
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
