-- Version 12: the free-text index (users_fts) is maintained once per write group, not once per
-- write.
--
-- Why: FTS5 writes its in-memory entries to a new segment of the index at every savepoint
-- release, and the writer runs each write in its own savepoint (store-sqlite's writer.rs). With
-- V4's triggers every created or renamed user became a segment of its own and merge work: about
-- 30% of the server's CPU under concurrent user creation at 1M users. Now the triggers only
-- note the user's row key here, and the writer, once per group and before its COMMIT (inside the
-- same transaction), re-indexes the noted rows and empties this table (users.rs,
-- `flush_pending_text_index`). A search runs after the write was answered, which is after that
-- COMMIT, so it sees the change as before.
--
-- A noted row key that no longer has a user row is a deleted user: its entry is removed and
-- nothing is inserted. Removing a row key the index does not hold is a no-op (contentless_delete
-- looks it up in the index's docsize table first), so a user created in the same group needs
-- no special case.
CREATE TABLE users_fts_pending (pk INTEGER PRIMARY KEY);

DROP TRIGGER users_fts_insert;
DROP TRIGGER users_fts_update;
DROP TRIGGER users_fts_delete;

CREATE TRIGGER users_fts_insert AFTER INSERT ON users BEGIN
    INSERT OR IGNORE INTO users_fts_pending (pk) VALUES (new.pk);
END;
-- UPDATE OF fires whenever a listed column is SET, even to the same value (a user update sets
-- them all); the WHEN skips the updates that leave the indexed text as it was. BINARY, since the
-- email column's own collation (NOCASE) would call a change of case no change. The row key is
-- never updated.
CREATE TRIGGER users_fts_update AFTER UPDATE OF login_ids, name, given_name, middle_name, family_name, email, phone ON users
    WHEN old.login_ids IS NOT new.login_ids OR old.name IS NOT new.name
        OR old.given_name IS NOT new.given_name OR old.middle_name IS NOT new.middle_name
        OR old.family_name IS NOT new.family_name OR old.email IS NOT new.email COLLATE BINARY
        OR old.phone IS NOT new.phone
BEGIN
    INSERT OR IGNORE INTO users_fts_pending (pk) VALUES (new.pk);
END;
CREATE TRIGGER users_fts_delete AFTER DELETE ON users BEGIN
    INSERT OR IGNORE INTO users_fts_pending (pk) VALUES (old.pk);
END;
