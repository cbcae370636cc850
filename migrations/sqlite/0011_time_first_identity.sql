-- One index for identity and time instead of two. An event is identified by (tenant, event_id, ts);
-- the same three values in the order (tenant, ts, event_id) are just as unique, and that order is
-- the one listing and time-range scans read. Keyed by id first, every insert of a random id (most
-- SDKs send UUIDs) landed on a random page of an index as large as the table's history, and each
-- commit wrote every such page to the WAL whole: 16 KiB per event once the index outgrew a
-- commit, which held SQLite ingest near 60k events/s within a minute of random ids. Keyed by time
-- first, inserts land at the index's newest end. Lookups by id alone go through a separate id
-- index (hub-ids.db next to this file, see host/storage/src/sqlite_ids.rs), written in large
-- sorted batches on a thread of its own.
-- Kept in step with ../postgres/0011_time_first_identity.sql (nothing changes there).
DROP INDEX events_identity;
DROP INDEX events_tenant_ts;
CREATE UNIQUE INDEX events_by_time ON events (tenant_id, ts, event_id);
