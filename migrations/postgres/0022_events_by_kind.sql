-- Events of an envelope kind by time (issue 20). Kept in step with ../sqlite/0022_events_by_kind.sql.
-- Event rules, the daily billing, budgets from an integration and the policy report read a kind's
-- events of a window; without this they scanned every event of the window (83 s for a 5-minute
-- window at 60,000 events/s: `scripts/bench-scheduler` with WITH=alerts). Partial: the calls
-- themselves (the bulk of a hub's events) are not in it, so ingest does not maintain it for them.
-- A query uses it when it says the same `kind NOT IN (…)` (storage's list_events does).
CREATE INDEX events_envelope_kind ON events (tenant_id, kind, ts)
    WHERE kind NOT IN ('llm_call', 'telemetry.latency');
