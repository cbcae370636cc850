-- Detectors and forecasters (issue 19): what they found, what they predict, and which scheduled
-- runs were made (host/pipeline/src/schedule.rs). Kept in step with ../postgres/0017_analysis.sql.
--
-- A series is named by its key: the dimensions it is grouped by and their values as a JSON
-- object with sorted keys (`{"model":"gpt-4o"}`; `{}` for the tenant's total), the same text
-- whoever wrote it, so a point is one row whichever replica or run found it.
CREATE TABLE anomalies (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      INTEGER NOT NULL,
    plugin         TEXT    NOT NULL,
    series_key     TEXT    NOT NULL,
    metric         TEXT    NOT NULL,
    step_ms        INTEGER NOT NULL,
    ts             INTEGER NOT NULL,
    value          REAL NOT NULL,
    expected       REAL,
    lower_bound    REAL,
    upper_bound    REAL,
    score          REAL NOT NULL,
    -- info, warning, critical; and as 0, 1, 2 for "at least" filters
    severity       TEXT    NOT NULL,
    severity_rank  INTEGER NOT NULL,
    reason         TEXT    NOT NULL,
    detected_at    INTEGER NOT NULL
);
-- One point is reported once: by (plugin, series, metric, time).
CREATE UNIQUE INDEX anomalies_point ON anomalies (tenant_id, plugin, series_key, metric, ts);
-- The newest first, for the list and its cursor.
CREATE INDEX anomalies_recent ON anomalies (tenant_id, ts, id);

-- The newest forecast of each (plugin, series, metric); `points` is JSON
-- `[[ts_ms, mean, lower, upper], ...]` with the bounds at `level`.
CREATE TABLE forecasts (
    tenant_id   INTEGER NOT NULL,
    plugin      TEXT    NOT NULL,
    series_key  TEXT    NOT NULL,
    metric      TEXT    NOT NULL,
    step_ms     INTEGER NOT NULL,
    level       REAL NOT NULL,
    made_at     INTEGER NOT NULL,
    first_ts    INTEGER NOT NULL,
    last_ts     INTEGER NOT NULL,
    points      TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, plugin, series_key, metric)
);

-- Scheduled runs, one row per (tenant, plugin, period): the row is the lease. A replica that
-- inserts it runs the period; a row whose run never finished can be taken over once its
-- `started_at` is older than the lease. `outcome`: ok, failed, skipped.
CREATE TABLE analysis_runs (
    tenant_id    INTEGER NOT NULL,
    plugin       TEXT    NOT NULL,
    period_ms    INTEGER NOT NULL,
    owner        TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    outcome      TEXT,
    series       INTEGER,
    found        INTEGER,
    message      TEXT,
    PRIMARY KEY (tenant_id, plugin, period_ms)
);
