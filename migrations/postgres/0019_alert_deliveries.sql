-- Alert notices on their way to integrations (issue 20). Kept in step with
-- ../sqlite/0019_alert_deliveries.sql.
--
-- One row per (notice, target): queued in the transaction that stores the alert's change, so a
-- notice is never lost between the evaluation and the delivery. `state`: queued, delivered,
-- failed (given up). A replica takes a due row by moving `claimed_until` past now; a replica
-- that dies mid-delivery leaves it to another once that passes. `payload` is the alert as the
-- target's `on-alerts` is handed it (JSON), fixed when the notice was raised.
CREATE TABLE alert_deliveries (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      BIGINT  NOT NULL,
    alert_id       BIGINT  NOT NULL,
    rule_id        BIGINT  NOT NULL,
    target         TEXT    NOT NULL,
    notice         TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    attempts       BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    next_at        BIGINT  NOT NULL,
    claimed_until  BIGINT  NOT NULL,
    finished_at    BIGINT,
    last_error     TEXT
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_at) WHERE state = 'queued';
CREATE INDEX alert_deliveries_alert ON alert_deliveries (tenant_id, alert_id);
CREATE INDEX alert_deliveries_recent ON alert_deliveries (tenant_id, id);

-- Every attempt of a delivery: when, how long, and what came of it (delivered, retry, failed).
CREATE TABLE alert_delivery_attempts (
    id           BIGSERIAL PRIMARY KEY,
    tenant_id    BIGINT  NOT NULL,
    delivery_id  BIGINT  NOT NULL,
    at           BIGINT  NOT NULL,
    duration_ms  BIGINT  NOT NULL,
    outcome      TEXT    NOT NULL,
    error        TEXT
);
CREATE INDEX alert_delivery_attempts_delivery ON alert_delivery_attempts (delivery_id, id);
