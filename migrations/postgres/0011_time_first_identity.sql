-- Kept in step with ../sqlite/0011_time_first_identity.sql, which makes SQLite's time index the
-- unique identity index and moves lookups by id to a separate, batch-written index. PostgreSQL
-- logs index changes per row rather than per page, and keeps both of its indexes: nothing changes
-- here.
SELECT 1;
