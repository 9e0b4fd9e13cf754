-- V12 changes how SQLite keeps its free-text index (once per write group, see the SQLite
-- migration of the same name). PostgreSQL's trigram index is maintained by the server itself and
-- needs no change; this file keeps the two backends' migration versions the same.
SELECT 1;
