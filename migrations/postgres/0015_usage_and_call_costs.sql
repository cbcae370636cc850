-- Usage details and honest cost (issue 16). Events keep the tokens providers bill apart (cache
-- reads and writes, reasoning, audio), each included in input_tokens or output_tokens, and the
-- cost as reported by the sender beside the cost as estimated by an enricher; cost_usd stays the
-- cost the event counts toward spend, and the service tier the sender names (`batch` is priced at
-- batch prices). Rollups sum all of them, and count the events that should
-- have a cost and have none (unpriced) with their tokens. Rows written before this migration
-- count 0 in the new sums. Kept in step with ../sqlite/0015_usage_and_call_costs.sql.
ALTER TABLE events ADD COLUMN cache_read_tokens BIGINT;
ALTER TABLE events ADD COLUMN cache_write_tokens BIGINT;
ALTER TABLE events ADD COLUMN reasoning_tokens BIGINT;
ALTER TABLE events ADD COLUMN audio_input_tokens BIGINT;
ALTER TABLE events ADD COLUMN audio_output_tokens BIGINT;
ALTER TABLE events ADD COLUMN reported_cost_usd DOUBLE PRECISION;
ALTER TABLE events ADD COLUMN estimated_cost_usd DOUBLE PRECISION;
ALTER TABLE events ADD COLUMN service_tier TEXT;

ALTER TABLE rollups ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN audio_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN audio_output_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN estimated_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN reported_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN unpriced_events BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN unpriced_tokens BIGINT NOT NULL DEFAULT 0;

-- One LLM call reported as several envelope events sharing a correlation_id (telemetry, usage,
-- cost) has one cost: the event holding it is named here. rank: 2 reported, 1 estimated,
-- 0 unpriced; a higher rank takes the cost over, and the event that held it counts 0 from then on
-- (host/storage/src/call_costs.rs).
CREATE TABLE call_costs (
    tenant_id       BIGINT NOT NULL,
    correlation_id  TEXT COLLATE "C" NOT NULL,
    rank            BIGINT NOT NULL,
    holder_ts       BIGINT NOT NULL,
    holder_event_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, correlation_id)
);
CREATE INDEX call_costs_age ON call_costs (tenant_id, holder_ts);
