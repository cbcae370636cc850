-- Re-pricing of stored events (issue 16): after a tenant changes a price, a discount or a custom
-- model, a job re-runs its cost estimate over a range of stored events and restates their cost and
-- the rollups (host/pipeline/src/reprice.rs). One row per job; `cursor` is where it has got to
-- (the last event it finished, as the event list's cursor), so a job whose replica stopped is
-- taken up where it was by another (its `heartbeat` grows old). Kept in step with
-- ../postgres/0016_reprice_jobs.sql.
CREATE TABLE reprice_jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       INTEGER NOT NULL,
    requested_by    TEXT    NOT NULL,
    from_ms         INTEGER NOT NULL,
    to_ms           INTEGER NOT NULL,
    filter_json     TEXT    NOT NULL,
    -- queued, running, done, failed, cancelled
    status          TEXT    NOT NULL,
    owner           TEXT,
    cursor          TEXT,
    events_examined INTEGER NOT NULL DEFAULT 0,
    events_changed  INTEGER NOT NULL DEFAULT 0,
    cost_before_usd REAL    NOT NULL DEFAULT 0,
    cost_after_usd  REAL    NOT NULL DEFAULT 0,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    heartbeat_at    INTEGER,
    finished_at     INTEGER
);
CREATE INDEX reprice_jobs_tenant ON reprice_jobs (tenant_id, id);
CREATE INDEX reprice_jobs_active ON reprice_jobs (status, heartbeat_at);
-- At most one job per tenant at a time.
CREATE UNIQUE INDEX reprice_jobs_one_active ON reprice_jobs (tenant_id) WHERE status IN ('queued', 'running');
