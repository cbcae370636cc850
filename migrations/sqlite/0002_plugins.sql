-- Plugins (SQLite). Components are stored by digest, shared by every tenant that installs them;
-- an install is one tenant's use of one plugin, with its configuration, grants and health.

CREATE TABLE plugin_components (
    digest     TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    manifest   TEXT    NOT NULL,
    component  BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX plugin_components_name ON plugin_components (name, version);

CREATE TABLE plugin_installs (
    tenant_id            INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                 TEXT    NOT NULL,
    digest               TEXT    NOT NULL REFERENCES plugin_components (digest),
    enabled              INTEGER NOT NULL,
    position             INTEGER NOT NULL,
    config               TEXT    NOT NULL,
    grants               TEXT    NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    disabled_reason      TEXT,
    installed_at         INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE plugin_kv (
    tenant_id INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin    TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    value     BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, plugin, key)
);
