-- Saved views (a named query of the metrics or event routes, kept per user and tenant, optionally
-- shared with the tenant), and single sign-on logins in progress (so that any replica can finish
-- one another started). Kept in step with ../postgres/0006_views_and_sso_state.sql.
CREATE TABLE saved_views (
    id         INTEGER PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    -- JSON: {"route": "summary" | "timeseries" | "events", "params": {"group_by": "model", ...}}
    query      TEXT    NOT NULL,
    shared     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (tenant_id, user_id, name)
);

CREATE TABLE oidc_logins (
    state      TEXT    PRIMARY KEY,
    verifier   TEXT    NOT NULL,
    nonce      TEXT    NOT NULL,
    tenant     TEXT,
    created_at INTEGER NOT NULL
);
