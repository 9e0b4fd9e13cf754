-- Version 13: nothing to do on PostgreSQL. On SQLite this version moves the audit trail into a
-- file of its own, so that its commits do not disturb the readers of the main database; a
-- PostgreSQL server has no such cost. Kept so that both backends number their schema alike.
SELECT 1;
