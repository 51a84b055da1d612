-- Migration 0009: the seqs at which recorded_at goes backwards (docs/FORMAT.md, section 24). The
-- writer's clock is almost always non-decreasing in seq order, so between two breaks a recorded-time
-- window is one seq range, found by binary search: a tenant + time page walks the tenant's index in
-- that range instead of sorting every entry of the window by seq (issue 19). Derived data, checked by
-- verification (a missing break is index-mismatch, an extra one foreign-row). Append-only.
CREATE TABLE audit_time_breaks (
    seq INTEGER PRIMARY KEY
) STRICT;

CREATE TRIGGER audit_time_breaks_no_update BEFORE UPDATE ON audit_time_breaks
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_time_breaks is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_time_breaks_no_delete BEFORE DELETE ON audit_time_breaks
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_time_breaks is append-only: DELETE is not allowed'); END;

-- The breaks of the rows already written: the log is the rows and the tombstones of expired rows.
INSERT INTO audit_time_breaks(seq)
SELECT seq FROM (
    SELECT seq, recorded_at < lag(recorded_at) OVER (ORDER BY seq) AS backwards
    FROM (SELECT seq, recorded_at FROM audit_entries WHERE seq >= 1
          UNION ALL SELECT seq, recorded_at FROM audit_expired x WHERE seq >= 1
                    AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq))
) WHERE backwards;
