-- Kept in step with ../postgres/0003_bytewise_keys.sql, which makes PostgreSQL compare event ids and
-- dimension values byte-wise. SQLite's default BINARY collation already does: nothing changes here.
SELECT 1;
