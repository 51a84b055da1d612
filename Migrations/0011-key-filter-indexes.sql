-- Migration 0011: the filters in the actor and resource id indexes (issue 19). A page for an actor
-- or resource id with many rows, filtered on action, outcome or severity (columns 0003's bucketed
-- indexes did not hold), read the key's rows one by one until the page was full: ~3,200 row reads
-- for a filter matching 1 row in 32 (4.5-7.3 ms at 10M rows, 22-27 ms at 100M, raw SQLite as much
-- on the same plan). With the filter columns in the index, SQLite tests them on the index entry
-- and reads only the rows that match. Both indexes stay bucketed by seq >> 14 and ordered by seq
-- within a key: the seq is the key expression (seq >> 0), as in 0010's tenant index, because
-- SQLite reads an expression key as stored (FORMAT.md section 11 step 7). Queries through these
-- indexes write their seq bounds and order as (seq >> 0).
DROP INDEX audit_entries_actor;
CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor, (seq >> 0), outcome, severity, action) WHERE actor IS NOT NULL;
DROP INDEX audit_entries_resource;
CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id, (seq >> 0), outcome, severity, action) WHERE resource_id IS NOT NULL;
