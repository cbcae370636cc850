-- Foundation schema (SQLite). The PostgreSQL set in ../postgres holds the same logical schema.
-- Times are epoch milliseconds (UTC). Migrations are never edited once landed: add a new file.

CREATE TABLE hub_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    tenant_id    INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL UNIQUE,
    secret_hash  TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE events (
    tenant_id       INTEGER NOT NULL,
    event_id        TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    source_module   TEXT,
    severity        TEXT,
    environment     TEXT,
    app             TEXT,
    model           TEXT,
    provider        TEXT,
    operation       TEXT,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    latency_ms      REAL,
    ttft_ms         REAL,
    status          TEXT,
    error_type      TEXT,
    cost_usd        REAL,
    user_id         TEXT,
    session_id      TEXT,
    trace_id        TEXT,
    correlation_id  TEXT,
    parent_event_id TEXT,
    tags            TEXT    NOT NULL,
    payload         TEXT    NOT NULL
);
-- Idempotency: an event is identified by its id and timestamp within a tenant.
CREATE UNIQUE INDEX events_identity ON events (tenant_id, event_id, ts);
-- Newest-first listing and time-range scans.
CREATE INDEX events_tenant_ts ON events (tenant_id, ts, event_id);
CREATE INDEX events_correlation ON events (tenant_id, correlation_id) WHERE correlation_id IS NOT NULL;

-- Pre-aggregates per resolution (res: 1 minute, 2 hour, 3 day) and grain: 0 keeps all seven
-- dimensions; 1 is the bucket's total (no dimension); 2 + d keeps only dimension d (in the order
-- source_module, app, environment, model, provider, operation, status). Queries that group or filter
-- by at most one dimension read the small grain rows. Dimensions hold '' when unset (or folded away)
-- so that the key is unique without NULL semantics.
CREATE TABLE rollups (
    tenant_id      INTEGER NOT NULL,
    res            INTEGER NOT NULL,
    grain          INTEGER NOT NULL,
    bucket         INTEGER NOT NULL,
    source_module  TEXT    NOT NULL,
    app            TEXT    NOT NULL,
    environment    TEXT    NOT NULL,
    model          TEXT    NOT NULL,
    provider       TEXT    NOT NULL,
    operation      TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    events         INTEGER NOT NULL,
    requests       INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cost_usd       REAL    NOT NULL,
    latency_count  INTEGER NOT NULL,
    latency_sum    REAL    NOT NULL,
    latency_sketch BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, res, grain, bucket, source_module, app, environment, model, provider, operation, status)
) WITHOUT ROWID;
