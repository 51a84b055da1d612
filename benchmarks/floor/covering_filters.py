#!/usr/bin/env python3
"""Covering filter columns in the tenant index: first page of 100 with filters, and append cost.

docs/performance.md, "Filters in the index: measured, not built". A synthetic table shaped like
audit_entries (seq as INTEGER PRIMARY KEY, a 300-byte payload per row), 3M rows: a small tenant
(0.16%), a big one (90% of the rest), 64 others; outcome 2 for 1 row in 16, severity 0/1, 8 actions.
Index a = (tenant, seq), AuditDB's audit_entries_tenant_seq; index b = (tenant, seq, outcome,
severity, action). SQLite tests WHERE terms on index columns before it reads the row, so b reads
only the rows that match. Usage: covering_filters.py DIR (needs ~2.2 GB free there).
"""
import os, random, shutil, sqlite3, statistics, sys, time

def build(path, n=3_000_000):
    random.seed(1)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t(seq INTEGER PRIMARY KEY, tenant TEXT, outcome INT, severity INT, action TEXT, pad TEXT)")
    rows = []
    for i in range(1, n + 1):
        rows.append((i, tenant(), 2 if random.randrange(16) == 0 else 0, random.randrange(2), "act%d" % random.randrange(8), "x" * 300))
        if len(rows) == 100_000:
            db.executemany("INSERT INTO t VALUES (?,?,?,?,?,?)", rows)
            rows = []
    db.commit()
    db.execute("CREATE INDEX a ON t(tenant, seq)")
    db.execute("CREATE INDEX b ON t(tenant, seq, outcome, severity, action)")
    db.commit()
    db.close()

def tenant():
    if random.random() < 0.0016:
        return "small"
    return "big" if random.random() < 0.9 else "t%d" % random.randrange(64)

QUERIES = {
    "small tenant + outcome + severity": "SELECT * FROM t INDEXED BY {ix} WHERE tenant='small' AND outcome=2 AND severity=1 ORDER BY seq DESC LIMIT 100",
    "small tenant + action": "SELECT * FROM t INDEXED BY {ix} WHERE tenant='small' AND action='act3' ORDER BY seq DESC LIMIT 100",
    "big tenant + outcome + severity": "SELECT * FROM t INDEXED BY {ix} WHERE tenant='big' AND outcome=2 AND severity=1 ORDER BY seq DESC LIMIT 100",
}

def first_pages(path):
    for name, sql in QUERIES.items():
        line = []
        for ix in ("a", "b"):
            times = []
            for _ in range(15):
                db = sqlite3.connect(path)  # a fresh connection: SQLite's cache cold, the OS cache warm
                start = time.perf_counter()
                rows = db.execute(sql.format(ix=ix)).fetchall()
                times.append((time.perf_counter() - start) * 1000)
                db.close()
            if len(rows) != 100:
                sys.exit("%s through %s returned %d rows, not a full page of 100" % (name, ix, len(rows)))
            line.append("%s p50 %.3f ms" % (ix, statistics.median(times)))
        print("%-36s %s" % (name, ", ".join(line)))

def append_rate(path, keep):
    copy = path + ".copy"
    shutil.copy(path, copy)
    db = sqlite3.connect(copy)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("DROP INDEX %s" % ("b" if keep == "a" else "a"))
    db.commit()
    random.seed(2)
    first = db.execute("SELECT max(seq) FROM t").fetchone()[0] + 1
    rows = [(first + i, tenant(), 2 if random.randrange(16) == 0 else 0, random.randrange(2), "act%d" % random.randrange(8), "x" * 300)
            for i in range(200_000)]
    start = time.perf_counter()
    for k in range(0, len(rows), 10_000):
        db.executemany("INSERT INTO t VALUES (?,?,?,?,?,?)", rows[k:k + 10_000])
        db.commit()
    rate = len(rows) / (time.perf_counter() - start)
    db.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(copy + suffix):
            os.remove(copy + suffix)
    return rate

if __name__ == "__main__":
    path = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "covering-filters.db")
    if not os.path.exists(path):
        build(path)
    first_pages(path)
    for run in range(2):
        print("append 200k rows, 10k per commit, the table with only a: %.0f rows/s; with only b: %.0f rows/s"
              % (append_rate(path, "a"), append_rate(path, "b")))
