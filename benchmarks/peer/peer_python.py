#!/usr/bin/env python3
"""peer_python.py - the hand-written reference design a typical user would write:
sqlite3 + hmac/hashlib, json.dumps(sort_keys=True) canonical form per row, hash chain,
commit every 10,000 rows; then a verify pass. Same schema/pragmas as the C case 1(a).

usage: peer_python.py DBPATH [ROWS=200000] [REPS=3] [--merkle] [--indexed]

A copy of the team's measurement script (shared/perf-limits/peer_python.py), kept here so the
benchmark is reproducible from the repository. --indexed (added here) gives its table the same
query indexes an AuditDB store has since migration 0003 -- actor and resource bucketed by
seq >> 14, (tenant, ts), (ts) -- so that the comparison is like for like.
Input events are pre-generated (outside the timer); the timed append covers payload JSON
serialization, canonical JSON, HMAC-SHA256, chain hash, INSERT and commits.
"""
import hashlib, hmac, json, os, random, sqlite3, statistics, sys, time

KEY = bytes(range(1, 33))
ACTIONS = ["login", "logout", "read", "write", "delete", "grant", "revoke", "export"]


def gen_events(n):
    rnd = random.Random(42)
    ev = []
    for i in range(1, n + 1):
        x, y = rnd.getrandbits(64), rnd.getrandbits(64)
        ev.append({
            "ts": 1700000000000000 + i * 1000 + (x & 511),
            "actor": "user-%05d" % (x % 50000),
            "action": ACTIONS[(x >> 20) & 7],
            "resource": "/projects/%d/docs/%d" % ((x >> 24) % 1000, y % 100000),
            "tenant": "tenant-%02d" % ((x >> 40) % 64),
            "payload": {"bytes": y % 1000000, "ip": "10.%d.%d.%d" % ((y >> 8) & 255, (y >> 16) & 255, (y >> 24) & 255),
                        "reason": "policy-check", "request_id": "%016x%016x" % (x, y), "session": "%016x" % (x ^ y),
                        "status": 200 + (y >> 32) % 300, "ua": "Mozilla/5.0 (X11; Linux x86_64) AuditClient/1.4"},
        })
    return ev


def canonical(seq, ts, actor, action, resource, tenant, payload, key_version, prev_hash):
    return json.dumps({"seq": seq, "ts": ts, "actor": actor, "action": action, "resource": resource,
                       "tenant": tenant, "payload": payload, "key_version": key_version,
                       "prev_hash": prev_hash.hex()}, sort_keys=True).encode()


def append(path, events, batch=10000):
    for suf in ("", "-wal", "-shm"):
        if os.path.exists(path + suf):
            os.remove(path + suf)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE audit_log(seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL,"
               " action TEXT NOT NULL, resource TEXT NOT NULL, tenant TEXT NOT NULL, payload TEXT NOT NULL,"
               " key_version INTEGER NOT NULL, prev_hash BLOB NOT NULL, mac BLOB NOT NULL)")
    if "--indexed" in sys.argv:
        db.execute("CREATE INDEX audit_log_actor ON audit_log((seq >> 14), actor)")
        db.execute("CREATE INDEX audit_log_resource ON audit_log((seq >> 14), resource)")
        db.execute("CREATE INDEX audit_log_tenant_ts ON audit_log(tenant, ts)")
        db.execute("CREATE INDEX audit_log_ts ON audit_log(ts)")
    sql = "INSERT INTO audit_log VALUES(?,?,?,?,?,?,?,?,?,?)"
    prev = bytes(32)
    t0 = time.perf_counter()
    cur = db.cursor()
    cur.execute("BEGIN")
    for seq, e in enumerate(events, 1):
        payload = json.dumps(e["payload"], sort_keys=True)
        msg = canonical(seq, e["ts"], e["actor"], e["action"], e["resource"], e["tenant"], payload, 1, prev)
        mac = hmac.new(KEY, msg, hashlib.sha256).digest()
        cur.execute(sql, (seq, e["ts"], e["actor"], e["action"], e["resource"], e["tenant"], payload, 1, prev, mac))
        prev = hashlib.sha256(mac).digest()
        if seq % batch == 0:
            cur.execute("COMMIT")
            cur.execute("BEGIN")
    cur.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return dt, os.path.getsize(path)


def verify(path):
    db = sqlite3.connect(path)
    prev = bytes(32)
    bad = n = 0
    t0 = time.perf_counter()
    for (seq, ts, actor, action, resource, tenant, payload, kv, ph, mac) in db.execute(
            "SELECT seq,ts,actor,action,resource,tenant,payload,key_version,prev_hash,mac FROM audit_log ORDER BY seq"):
        n += 1
        if ph != prev:
            bad += 1
        msg = canonical(seq, ts, actor, action, resource, tenant, payload, kv, ph)
        if not hmac.compare_digest(hmac.new(KEY, msg, hashlib.sha256).digest(), mac):
            bad += 1
        prev = hashlib.sha256(mac).digest()
    dt = time.perf_counter() - t0
    db.close()
    return dt, n, bad


def merkle(path, reps):
    try:
        import pymerkle
    except ImportError:
        print("pymerkle not installed; skipping")
        return
    from pymerkle import InmemoryTree, verify_inclusion
    db = sqlite3.connect(path)
    leaves = [m for (m,) in db.execute("SELECT mac FROM audit_log ORDER BY seq")]
    db.close()
    build, state, prove = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        tree = InmemoryTree(algorithm="sha256")
        for leaf in leaves:
            tree.append_entry(leaf)
        build.append(time.perf_counter() - t0)
        size = tree.get_size()
        t0 = time.perf_counter()
        root = tree.get_root()
        state.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        k = 100
        for j in range(k):
            idx = 1 + (j * 7919) % size
            proof = tree.prove_inclusion(idx, size)
        prove.append((time.perf_counter() - t0) / k)
        base = tree.get_leaf(idx)
        verify_inclusion(base, root, proof)  # raises on failure
    print("pymerkle %s: build %d leaves: s min/med/max = %.3f/%.3f/%.3f  -> %.0f leaves/s (med);"
          " root(get_root): s med %.3f; inclusion proof: ms min/med/max = %.3f/%.3f/%.3f" % (
              pymerkle.__version__ if hasattr(pymerkle, "__version__") else "?", len(leaves),
              min(build), statistics.median(build), max(build), len(leaves) / statistics.median(build), statistics.median(state),
              min(prove) * 1e3, statistics.median(prove) * 1e3, max(prove) * 1e3))


def main():
    path = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    events = gen_events(rows)
    a, v = [], []
    for r in range(reps):
        dt, size = append(path, events)
        a.append(dt)
        vt, n, bad = verify(path)
        v.append(vt)
        print("rep %d: append %.3f s (%.0f rows/s), file %d B (%.1f B/row); verify %.3f s (%.0f rows/s) rows=%d bad=%d"
              % (r + 1, dt, rows / dt, size, size / rows, vt, n / vt, n, bad), flush=True)
    am, vm = statistics.median(a), statistics.median(v)
    print("python append rows/s min/med/max = %.0f/%.0f/%.0f" % (rows / max(a), rows / am, rows / min(a)))
    print("python verify rows/s min/med/max = %.0f/%.0f/%.0f" % (rows / max(v), rows / vm, rows / min(v)))
    if "--merkle" in sys.argv:
        merkle(path, reps)


if __name__ == "__main__":
    main()
