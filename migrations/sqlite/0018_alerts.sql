-- Alert rules and the alerts they raise (issue 20). Kept in step with ../postgres/0018_alerts.sql.
--
-- A rule is stored as the tenant wrote it (`spec`, JSON checked by the API); its name is unique
-- per tenant.
CREATE TABLE alert_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    spec        TEXT    NOT NULL,
    enabled     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT    NOT NULL
);
CREATE UNIQUE INDEX alert_rules_name ON alert_rules (tenant_id, name);

-- One row per (rule, group) from the moment its condition held until it resolved; the group is
-- named like a series (`{"model":"gpt-4o"}`). `state`: pending, firing, resolved. At most one
-- open (pending or firing) alert per (rule, group).
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    INTEGER NOT NULL,
    rule_id      INTEGER NOT NULL,
    group_key    TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    value        REAL    NOT NULL,
    summary      TEXT    NOT NULL,
    since        INTEGER NOT NULL,
    fired_at     INTEGER,
    resolved_at  INTEGER,
    notified_at  INTEGER
);
CREATE UNIQUE INDEX alerts_open ON alerts (tenant_id, rule_id, group_key) WHERE state <> 'resolved';
-- The newest first, for the list and its cursor.
CREATE INDEX alerts_recent ON alerts (tenant_id, since, id);
