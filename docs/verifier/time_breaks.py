"""time_breaks.py - the log's time breaks (docs/FORMAT.md section 24), for auditdb_verify.py.

Written from FORMAT.md section 24 alone, with nothing but the Python standard library: step 11 of
verification (24.3). `audit_time_breaks` must hold exactly the seqs whose `recorded_at` is lower
than their predecessor's in the log (rows and tombstones of expired rows, in seq order): a step
back without a break is `index-mismatch` at its seq; a break that is not a step back, or at a seq
where the log has no element, or outside 1...L, is `foreign-row` at its seq. Elements whose seq or
predecessor's seq step 4 reported as untrustworthy, or that are tombstones of an expiry entry step 9
reported, are not judged.
"""

from __future__ import annotations

UNTRUSTED = ("mac-mismatch", "malformed-row", "unknown-key-version", "chain-break")
OUTSIDE_NAMED_LIMIT = 1000


def _table_exists(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def check_time_breaks(conn, report) -> None:
    """Step 11 (section 24.3), a full pass. Reads report.findings for step 4's untrusted rows."""
    if not all(_table_exists(conn, t) for t in ("audit_time_breaks", "audit_entries", "audit_expired")):
        return
    untrusted = [(f.first, f.last) for f in report.findings
                 if f.kind in UNTRUSTED and f.first is not None and f.last is not None]

    # Tombstones of an expiry entry step 9 reported: their recorded_at is authenticated only by it.
    tampered = sorted({f.first for f in report.findings if f.kind == "expiry-tampered" and f.first is not None})
    tombstones = {seq for e in tampered
                  for (seq,) in conn.execute("SELECT seq FROM audit_expired WHERE expiry_seq = ?", (e,))}

    def is_untrusted(seq):
        return seq is not None and (seq in tombstones or any(a <= seq <= b for a, b in untrusted))

    def foreign(seq, why, cause=""):
        report.add("foreign-row", seq, seq,
                   f"audit_time_breaks holds seq {seq}, {why}: inserted by another SQLite client{cause}")

    last = conn.execute("SELECT max(seq) FROM audit_entries NOT INDEXED WHERE seq >= 1").fetchone()[0] or 0
    # 1. Breaks outside the log.
    for (seq,) in conn.execute("SELECT seq FROM audit_time_breaks WHERE seq < 1 OR seq > ? ORDER BY seq LIMIT ?",
                               (last, OUTSIDE_NAMED_LIMIT)):
        foreign(seq, f"which is outside the log (seq 1...{last})",
                ", or left behind when the rows up to it were cut from the log's end" if seq > last else "")
    if last < 1:
        return
    breaks = [seq for (seq,) in conn.execute(
        "SELECT seq FROM audit_time_breaks WHERE seq >= 1 AND seq <= ? ORDER BY seq", (last,))]
    # The log: rows, and tombstones at seqs without a row, merged in seq order.
    log = conn.execute("""
        SELECT seq, recorded_at FROM audit_entries NOT INDEXED WHERE seq >= 1 AND seq <= ?1
        UNION ALL SELECT seq, recorded_at FROM audit_expired x WHERE seq >= 1 AND seq <= ?1
            AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq)
        ORDER BY seq""", (last,))
    i = 0
    prev_seq, prev_time = None, None
    for seq, time in log:
        # 3. Breaks between elements.
        while i < len(breaks) and breaks[i] < seq:
            foreign(breaks[i], "where the log has no row")
            i += 1
        recorded = i < len(breaks) and breaks[i] == seq
        if recorded:
            i += 1
        backwards = prev_time is not None and isinstance(time, int) and isinstance(prev_time, int) and time < prev_time
        adjacent = prev_seq is None or prev_seq == seq - 1  # after a gap (missing-rows) the step is not judged
        judged = adjacent and not is_untrusted(seq) and not is_untrusted(prev_seq)
        # 2. Every judged element.
        if judged and backwards and not recorded:
            report.add("index-mismatch", seq, seq,
                       f"row {seq} was recorded before row {prev_seq} (recorded_at goes backwards) but "
                       "audit_time_breaks lacks it: a query by recorded time could miss rows")
        elif judged and recorded and not backwards:
            foreign(seq, "where recorded_at does not go backwards")
        prev_seq, prev_time = seq, time
    for seq in breaks[i:]:
        foreign(seq, "where the log has no row")
