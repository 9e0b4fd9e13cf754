-- Version 9: user search at a million users.
--
-- The total of a search whose only conditions are the project, the test flag and statuses (the
-- empty filter, a status filter) is a sum of a few counters instead of a count of every row.
-- Triggers keep the counters, so every write to users (single, batch, import, cascade) moves
-- them in its own transaction and they are exact; a bulk path that bypasses these triggers must
-- rebuild the table with the INSERT ... SELECT below.
CREATE TABLE user_counts (
    project_id  TEXT NOT NULL,
    test        INTEGER NOT NULL,
    status      TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (project_id, test, status)
) STRICT, WITHOUT ROWID;

INSERT INTO user_counts (project_id, test, status, n)
    SELECT project_id, test, status, COUNT(*) FROM users GROUP BY project_id, test, status;

CREATE TRIGGER user_counts_insert AFTER INSERT ON users BEGIN
    INSERT INTO user_counts (project_id, test, status, n) VALUES (new.project_id, new.test, new.status, 1)
        ON CONFLICT (project_id, test, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER user_counts_delete AFTER DELETE ON users BEGIN
    UPDATE user_counts SET n = n - 1
        WHERE project_id = old.project_id AND test = old.test AND status = old.status;
END;
CREATE TRIGGER user_counts_update AFTER UPDATE OF project_id, test, status ON users
    WHEN old.project_id IS NOT new.project_id OR old.test IS NOT new.test OR old.status IS NOT new.status
BEGIN
    UPDATE user_counts SET n = n - 1
        WHERE project_id = old.project_id AND test = old.test AND status = old.status;
    INSERT INTO user_counts (project_id, test, status, n) VALUES (new.project_id, new.test, new.status, 1)
        ON CONFLICT (project_id, test, status) DO UPDATE SET n = n + 1;
END;

-- A status filter pages in creation order within one status: an index walk whose skipped rows
-- (a deep page's OFFSET) never read the table. The row key (pk) ends every SQLite index.
CREATE INDEX users_project_test_status ON users(project_id, test, status);

-- Sorting by display name or email pages by walking an index in the order the query asks
-- (NOCASE, as core's case-folded collation; ties in creation order by the implicit pk).
CREATE INDEX users_project_test_name ON users(project_id, test, name COLLATE NOCASE);
CREATE INDEX users_project_test_email ON users(project_id, test, email COLLATE NOCASE);
