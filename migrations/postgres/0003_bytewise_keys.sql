-- Event ids and dimension values are identifiers, not prose: compare them byte-wise (COLLATE "C"),
-- as SQLite's BINARY collation already does. Under a linguistic collation (the cluster's default,
-- e.g. en_US.UTF-8 or C.UTF-8) every B-tree comparison on these keys calls strcoll, which was the
-- largest single cost of PostgreSQL ingest (index inserts and the rollup merge join). Orderings
-- that include these columns (the event cursor, group keys) now agree with SQLite's.
-- Changing only the collation rewrites no table, but rebuilds the indexes that use the columns.

ALTER TABLE events
    ALTER COLUMN event_id       TYPE TEXT COLLATE "C",
    ALTER COLUMN correlation_id TYPE TEXT COLLATE "C";

ALTER TABLE rollups
    ALTER COLUMN source_module TYPE TEXT COLLATE "C",
    ALTER COLUMN app           TYPE TEXT COLLATE "C",
    ALTER COLUMN environment   TYPE TEXT COLLATE "C",
    ALTER COLUMN model         TYPE TEXT COLLATE "C",
    ALTER COLUMN provider      TYPE TEXT COLLATE "C",
    ALTER COLUMN operation     TYPE TEXT COLLATE "C",
    ALTER COLUMN status        TYPE TEXT COLLATE "C";
