-- Version 13: the audit trail moves out of the main database into its own file, attached to every
-- connection as `audit` (`<name>-audit.db` beside the database; see lib.rs, `attach_audit`).
--
-- Why: in WAL mode, every COMMIT to a database makes each of its readers drop its page cache and
-- unmap its whole memory mapping at its next read, then fault the pages in again. Recording every
-- token read made the audit writer commit about ten times a second, so each token read paid that
-- cost; measured at 1M users, a token read's throughput fell to a third. Commits to the attached
-- file leave the main database's readers alone, and its growth no longer swells the main file.
--
-- The records already written move across; the table in the main file goes.
INSERT INTO audit.audit_events (project_id, occurred_ms, action, kind, actor_type, actor_id, actor_name,
                                user_id, login_ids, tenants, remote_address, device, method, geo, data)
SELECT project_id, occurred_ms, action, kind, actor_type, actor_id, actor_name,
       user_id, login_ids, tenants, remote_address, device, method, geo, data
FROM main.audit_events ORDER BY id;
DROP TABLE main.audit_events;
