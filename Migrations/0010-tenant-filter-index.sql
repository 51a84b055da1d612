-- Migration 0010: the filters in the tenant index (issue 19). A tenant's page with a filter on
-- action, outcome or severity (columns 0008's index did not hold) read the tenant's rows one by one
-- until the page was full: ~3,200 row reads for a filter matching 1 row in 32, each on another
-- table page for a small tenant (2.3-7.7 ms at 10M rows, raw SQLite as much on the same plan).
-- With the filter columns in the index, SQLite tests them on the index entry and reads only the
-- rows that match. The seq is the key expression (seq >> 0), the identity on integers, so the
-- index stays ordered (tenant, seq): a plain `seq` key would be answered from the rowid by a
-- covering scan, so a key edited in the file would escape the index proof (FORMAT.md section 11
-- step 7), whereas SQLite reads an expression key as stored, for seeks and proofs alike. Queries
-- through the index write their seq bounds and order as (seq >> 0).
DROP INDEX audit_entries_tenant_seq;
CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant, (seq >> 0), outcome, severity, action) WHERE tenant IS NOT NULL;
