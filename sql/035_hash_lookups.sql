-- 035_hash_lookups: the request path finds its license and installation
-- through hash indexes.
--
-- Every validate, heartbeat and usage call that reaches the database reads
-- one license by id and one installation by (license, installation id)
-- (licd_lookup_batch), and its last_seen refresh finds the installation
-- again (licd_touch_batch). Through a B-tree each of those descents reads
-- one page per level of the tree, and a level more at a million rows than
-- at ten thousand, pages no CPU cache holds at that size. A hash index
-- reads one bucket page at any size (its metapage stays in the backend's
-- cache), so that a lookup costs a large fleet nearly what it costs a small
-- one (docs/PERFORMANCE.md).
--
-- A hash index holds one column and enforces no uniqueness: the primary
-- keys stay, for the constraints, the foreign keys and ON CONFLICT, and
-- the installation is found by its id and checked for its license, which
-- the planner chooses while installation ids are few per value (it reads
-- the primary key instead once ANALYZE sees an id shared by many
-- licenses). installations_iid served only equality (the console's search
-- by installation id), which a hash index serves as well: it becomes one,
-- rather than the column gaining a second index of its own. Neither column
-- is ever updated, so neither index costs a heap-only update anything.
--
-- Building them locks out writes to both tables while they are built (a
-- few seconds at a million rows): run this migration when validates
-- waiting that long are acceptable.
CREATE INDEX licenses_id_hash ON licenses USING hash (id);

DROP INDEX installations_iid;
CREATE INDEX installations_iid ON installations USING hash (installation_id);
