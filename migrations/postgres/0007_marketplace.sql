-- The marketplace (postgres). Publishers register ed25519 keys; a package is a name owned by one
-- publisher; each version is immutable once published (only its yank state changes) and keeps
-- the signed .hubpkg it came from, so installs and other hubs can check it again.

CREATE TABLE publisher_keys (
    key_id     TEXT    PRIMARY KEY,
    -- Who publishes with it: a user's email, or the hub itself for first-party plugins.
    publisher  TEXT    NOT NULL,
    user_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    public_key TEXT    NOT NULL,
    -- Only the hub's own first-party key keeps its secret here; publishers keep theirs.
    secret_key TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX publisher_keys_one_first_party ON publisher_keys (publisher) WHERE secret_key IS NOT NULL;

CREATE TABLE market_packages (
    name        TEXT    PRIMARY KEY,
    publisher   TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE market_versions (
    name             TEXT    NOT NULL REFERENCES market_packages (name),
    version          TEXT    NOT NULL,
    digest           TEXT    NOT NULL,
    -- hub_marketplace::plugin_digest of the manifest and component, as installs name it.
    plugin_digest    TEXT    NOT NULL REFERENCES plugin_components (digest),
    key_id           TEXT    NOT NULL REFERENCES publisher_keys (key_id),
    manifest         TEXT    NOT NULL,
    readme           TEXT    NOT NULL,
    icon             BYTEA,
    package          BYTEA   NOT NULL,
    size             BIGINT NOT NULL,
    published_by     TEXT    NOT NULL,
    published_at     BIGINT NOT NULL,
    yanked_at        BIGINT,
    yank_reason      TEXT,
    downloads        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (name, version)
);
