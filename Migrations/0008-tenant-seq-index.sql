-- Migration 0008: a tenant's rows in seq order (issue 19). With only (tenant, recorded_at), a
-- tenant's newest-first page read every row of the tenant and sorted them by seq (~1 s for a
-- 350k-row tenant). An index on (tenant) of this rowid table is ordered by (tenant, seq), so a
-- page in either direction is one seek and a walk. (seq is not a key column: SQLite would answer
-- a covering scan's seq from the rowid, so a key column edited in the file would escape the
-- index proof of FORMAT.md section 11 step 7.) New rows go to the right edge of their tenant.
CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant) WHERE tenant IS NOT NULL;
