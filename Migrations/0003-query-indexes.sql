-- Migration 0003: indexes for the query API, and the scan history view.
--
-- Actor and resource ids are high-cardinality keys that arrive in random order; a plain index
-- on them makes every append write to a random page of a large B-tree (raw SQLite manages
-- 34k-54k rows/s with such indexes on a 1M-row table here). These two are bucketed by
-- seq >> 14 (16,384 rows): new rows only ever go into the newest bucket's part of the index,
-- which stays small and hot, so appends stay fast; a lookup seeks once per bucket
-- (docs/performance.md). Tenant + time and time alone are appended near the right edge anyway.
-- The partial indexes leave out rows without the value.
CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor) WHERE actor IS NOT NULL;
CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id) WHERE resource_id IS NOT NULL;
CREATE INDEX audit_entries_tenant_time ON audit_entries(tenant, recorded_at) WHERE tenant IS NOT NULL;
CREATE INDEX audit_entries_recorded_at ON audit_entries(recorded_at);
-- AuditDB's own entries (actions auditdb.*: scan records, key declarations, adoption runs), so
-- that the newest scan record is found without reading the log backwards. Rare rows: appends of
-- app events only evaluate the WHERE clause.
CREATE INDEX audit_entries_engine ON audit_entries(action) WHERE action >= 'auditdb.' AND action < 'auditdb/';
-- The integrity scanner records every pass as a log entry (action auditdb.scan, signed and
-- chained like any other row); this view shows them as a table.
CREATE VIEW audit_scan_history AS
SELECT seq,
       strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000000.0, 'unixepoch') AS recorded_at,
       json_extract(details, '$.mode') AS mode,
       json_extract(details, '$.fromSeq') AS from_seq,
       json_extract(details, '$.throughSeq') AS through_seq,
       json_extract(details, '$.rowsChecked') AS rows_checked,
       json_extract(details, '$.durationMicros') AS duration_us,
       json_extract(details, '$.result') AS result,
       json_extract(details, '$.findings') AS findings,
       json_extract(details, '$.firstFinding') AS first_finding
FROM audit_entries
WHERE action = 'auditdb.scan' AND origin = 0;
