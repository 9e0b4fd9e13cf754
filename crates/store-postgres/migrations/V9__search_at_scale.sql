-- Version 9: user search at a million users.
--
-- The total of a search whose only conditions are the project, the test flag and statuses (the
-- empty filter, a status filter) is a sum of counters instead of a count of every row. A
-- trigger keeps them in the writing transaction, so they are exact and every path that writes
-- users (single, batch, import, cascade) keeps them.
--
-- Each (project, test, status) count is split over slots chosen by the writing connection's
-- backend, so concurrent writers of one project mostly update different rows instead of queueing
-- on one; a total is the sum over the slots (a few hundred rows at most).
CREATE TABLE user_counts (
    project_id  TEXT NOT NULL,
    test        BOOLEAN NOT NULL,
    status      TEXT NOT NULL,
    slot        SMALLINT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (project_id, test, status, slot)
);

INSERT INTO user_counts (project_id, test, status, slot, n)
    SELECT project_id, test, status, 0, COUNT(*) FROM users GROUP BY project_id, test, status;

CREATE FUNCTION user_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_slot SMALLINT := pg_backend_pid() % 64;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO user_counts (project_id, test, status, slot, n)
            VALUES (OLD.project_id, OLD.test, OLD.status, my_slot, -1)
            ON CONFLICT (project_id, test, status, slot) DO UPDATE SET n = user_counts.n - 1;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO user_counts (project_id, test, status, slot, n)
            VALUES (NEW.project_id, NEW.test, NEW.status, my_slot, 1)
            ON CONFLICT (project_id, test, status, slot) DO UPDATE SET n = user_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_counts_insert_delete AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION user_counts_follow();
CREATE TRIGGER user_counts_update AFTER UPDATE OF project_id, test, status ON users
    FOR EACH ROW
    WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.test IS DISTINCT FROM NEW.test
          OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION user_counts_follow();

-- A status filter pages in creation order within one status: an index walk (index-only where
-- the visibility map allows) rather than a scan and sort.
CREATE INDEX users_project_test_status ON users(project_id, test, status, pk);

-- Sorting by display name or email pages by walking an index in the order the query asks
-- (core's case-folded collation, NULLs first ascending and last descending, ties by pk).
CREATE INDEX users_project_test_name ON users(project_id, test, lower(name COLLATE "C") NULLS FIRST, pk);
CREATE INDEX users_project_test_email ON users(project_id, test, lower(email COLLATE "C") NULLS FIRST, pk);
