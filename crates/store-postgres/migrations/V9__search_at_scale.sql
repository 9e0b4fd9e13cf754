-- Version 9: user search at a million users.
--
-- Totals still count the matching rows here. Counters kept by a row trigger (as SQLite's V9 has)
-- were measured and dropped: PostgreSQL writes a new version of a counter row on every update,
-- and a transaction that inserts many users updates the same row many times, each update walking
-- the versions before it: at 1M users, one INSERT of 20k users took 17-23 s with the counter
-- trigger and these indexes, 3.0-3.3 s with the indexes alone, 2.3-3.2 s with neither.

-- A status filter pages in creation order within one status: an index walk (index-only where
-- the visibility map allows) rather than a scan and sort.
CREATE INDEX users_project_test_status ON users(project_id, test, status, pk);

-- Sorting by display name or email pages by walking an index in the order the query asks
-- (core's case-folded collation, NULLs first ascending and last descending, ties by pk).
CREATE INDEX users_project_test_name ON users(project_id, test, lower(name COLLATE "C") NULLS FIRST, pk);
CREATE INDEX users_project_test_email ON users(project_id, test, lower(email COLLATE "C") NULLS FIRST, pk);
