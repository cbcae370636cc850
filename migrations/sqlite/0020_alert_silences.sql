-- Silences of alert notices (issue 20). Kept in step with ../postgres/0020_alert_silences.sql.
--
-- A silence holds back the notices whose labels match all its matchers (`matchers`: JSON, as the
-- tenant wrote them) from `starts_at` until `ends_at`; expiring one early moves `ends_at` to then.
-- Who made it and why are kept for the audit of what was not sent.
CREATE TABLE alert_silences (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   INTEGER NOT NULL,
    matchers    TEXT    NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    comment     TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX alert_silences_tenant ON alert_silences (tenant_id, ends_at);
