-- A tenant's own retention: how long it keeps raw events and each rollup resolution, where it wants
-- to keep less than the operator's policy (NULL: as the operator's). The effective policy is the
-- shorter of the two, so a tenant can shorten but never extend what the deployment keeps.
CREATE TABLE tenant_retention (
    tenant_id  BIGINT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    raw_ms     BIGINT,
    minute_ms  BIGINT,
    hour_ms    BIGINT,
    day_ms     BIGINT,
    updated_at BIGINT NOT NULL
);
