-- 035_hash_lookups: the request path finds its license and installation
-- through hash indexes.
--
-- Every validate, heartbeat and usage call that reaches the database reads
-- one license by id and one installation by (license, installation id)
-- (licd_lookup, licd_lookup_batch), and its last_seen refresh finds the
-- installation again (licd_touch_batch). Through a B-tree each of those
-- descents reads one page per level of the tree, and a level more at a
-- million rows than at ten thousand, pages no CPU cache holds at that
-- size. A hash index reads one bucket page at any size (its metapage stays
-- in the backend's cache), so that a lookup costs a large fleet nearly
-- what it costs a small one (docs/PERFORMANCE.md).
--
-- A hash index holds one value and enforces no uniqueness: the primary
-- keys stay, for the constraints, the foreign keys and ON CONFLICT. The
-- installation's is hashed on its whole key, the license's id as text (36
-- characters, so the two cannot run together ambiguously) followed by the
-- installation id, which those three functions compare beside the two
-- columns: an index on the installation id alone would make every lookup
-- of an id many licenses share (a vendor's fixed "default", a machine
-- with several products) read all of them, whatever ANALYZE saw. Neither
-- column is ever updated, so neither index costs a heap-only update
-- anything.
--
-- Building them locks out writes to both tables while they are built (a
-- few seconds at a million rows): run this migration when validates
-- waiting that long are acceptable.
CREATE INDEX licenses_id_hash ON licenses USING hash (id);
CREATE INDEX installations_id_hash ON installations
  USING hash ((license_id::text || installation_id));
