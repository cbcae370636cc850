-- Silences of alert notices (issue 20). Kept in step with ../sqlite/0020_alert_silences.sql.
--
-- A silence holds back the notices whose labels match all its matchers (`matchers`: JSON, as the
-- tenant wrote them) from `starts_at` until `ends_at`; expiring one early moves `ends_at` to then.
-- Who made it and why are kept for the audit of what was not sent.
CREATE TABLE alert_silences (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   BIGINT  NOT NULL,
    matchers    TEXT    NOT NULL,
    starts_at   BIGINT  NOT NULL,
    ends_at     BIGINT  NOT NULL,
    comment     TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX alert_silences_tenant ON alert_silences (tenant_id, ends_at);
