-- Which plugin filled which field of an event. Events of a tenant mostly share a few such shapes
-- (a JSON array of {"plugin", "fields"} in the order the enrichers ran), so each shape is kept
-- once, named by its hash, and an event row carries only that id: NULL when no plugin changed it
-- (every event stored before this migration).
CREATE TABLE enrichment_shapes (
    id     INTEGER PRIMARY KEY,
    fields TEXT   NOT NULL
);
ALTER TABLE events ADD COLUMN enriched_by BIGINT;
