#!/usr/bin/env python3
"""selftest.py - checks docs/verifier/auditdb_verify.py, docs/test-vectors/vectors.json and
docs/FORMAT.md against each other (standard library only; exits non-zero on any failure).

    python3 docs/verifier/selftest.py [--no-c] [-v]

1. vectors.json is exactly what `auditdb_verify.py --emit-vectors` produces now (not stale);
   HMAC-SHA256 passes RFC 4231 test case 2.
2. The schema copies agree: auditdb_verify.SCHEMA_SQL, the ```sql block of FORMAT.md and
   schema/audit.sql (when present) define identical sqlite_schema objects.
3. Stores built here (from the format, in Python) verify as intact, and each tampering is
   reported with the right finding kind at the right seq (value changed with triggers dropped,
   row deleted, rows swapped, a row spliced from a fork, header changed, header format version
   other than 1, wrong store pinned, unknown and compromised key versions, attestations of rows
   and of the header (seq 0) and the declaration rule, malformed rows, seq < 1, a non-database
   file, a WAL store read while a writer holds it open), the command line's exit statuses and
   the strict parsing of AUDITDB_KEYS.
4. Unless --no-c: if a C compiler and OpenSSL's libcrypto are available, compiles
   Sources/CAuditCore/audit_core.c (the reference) into a temporary shared library and checks,
   through ctypes, that it reproduces every value in vectors.json. Skipped (not failed) when
   the toolchain is missing.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib.util
import json
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
DOCS = HERE.parent
REPO = DOCS.parent
VERIFY_PY = HERE / "auditdb_verify.py"
VECTORS = DOCS / "test-vectors" / "vectors.json"
FORMAT_MD = DOCS / "FORMAT.md"
SCHEMA_FILE = REPO / "schema" / "audit.sql"
C_SOURCE = REPO / "Sources" / "CAuditCore" / "audit_core.c"
C_INCLUDE = REPO / "Sources" / "CAuditCore" / "include"

spec = importlib.util.spec_from_file_location("auditdb_verify", VERIFY_PY)
av = importlib.util.module_from_spec(spec)
sys.modules["auditdb_verify"] = av
spec.loader.exec_module(av)

FAILURES: list[str] = []
VERBOSE = False


def check(cond: bool, what: str) -> None:
    if cond:
        if VERBOSE:
            print(f"  ok    {what}")
    else:
        FAILURES.append(what)
        print(f"  FAIL  {what}")


def kinds(report) -> list[tuple[str, int | None]]:
    return [(f.kind, f.first) for f in report.findings]


# ------------------------------------------------------------------------------------------
# Building stores (from FORMAT.md, via the verifier's own primitives)
# ------------------------------------------------------------------------------------------

K1, K2 = av.TEST_MASTER_KEY_1, av.TEST_MASTER_KEY_2
KS = {1: av.KeySet(K1), 2: av.KeySet(K2)}
SID = av.TEST_STORE_ID


def key_text(statuses: dict[int, str]) -> str:
    masters = {1: K1, 2: K2}
    lines = ["# PUBLIC TEST-ONLY KEYS", "auditdb-keys v1"]
    for v, st in sorted(statuses.items()):
        lines.append(f"key {v} {st} - {masters[v].hex()}")
    return "\n".join(lines) + "\n"


def write_key_file(path: pathlib.Path, statuses: dict[int, str], mode: int = 0o600) -> str:
    path.write_text(key_text(statuses))
    os.chmod(path, mode)
    return str(path)


DECLARATION = "auditdb.key.compromised"


def sample_rows(n: int, rotate_at: int | None = None, declarations: tuple[int, ...] = ()) -> list[dict]:
    """n rows (column values as stored, text as str); key version 2 from seq `rotate_at`; the rows
    at `declarations` have the action auditdb.key.compromised (they can declare a compromise)."""
    rows = []
    for seq in range(1, n + 1):
        rows.append({
            "seq": seq, "recorded_at": 1_795_439_700_000_000 + seq * 1_000,
            "occurred_at": None if seq % 3 == 0 else 1_795_439_600_000_000 + seq,
            "tenant": None if seq % 2 else "t-\u00e9",
            "actor": f"user{seq}", "action": "doc.read" if seq % 4 else "doc.delete",
            "resource_type": "doc", "resource_id": f"\u6587-{seq}",
            "outcome": seq % 4, "severity": (seq // 2) % 4, "correlation_id": None if seq % 5 else f"c{seq}",
            "source": None if seq % 2 == 0 else "cli", "details": None if seq % 3 == 1 else f"{{\"n\":{seq}}}",
            "origin": 1 if seq == n and n > 2 else 0, "origin_ref": 1 if seq == n and n > 2 else None,
            "format_version": 1, "key_version": 2 if rotate_at and seq >= rotate_at else 1,
        })
        if seq in declarations:
            rows[-1]["action"] = DECLARATION
    return rows


def base_rows() -> list[dict]:
    """The rows of the 10-row test store: key version 2 from seq 7; declarations at 7 and 9."""
    return sample_rows(10, rotate_at=7, declarations=(7, 9))


def as_bytes_row(cols: dict) -> dict:
    row = dict(cols)
    for c in av.TEXT_COLUMNS:
        if row[c] is not None:
            row[c] = row[c].encode("utf-8")
    return row


def build_store(path: pathlib.Path, rows: list[dict], store_id: bytes = SID, wal: bool = False,
                attest: list[tuple[int, int, int]] = (), created_at: int = av.TEST_CREATED_AT) -> list[bytes]:
    """Writes a store as the reference does; returns the stored MACs (index 0 = seq 1).
    `attest` holds (seq, attesting key version, declaration_seq); seq 0 attests the header."""
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    # The current schema, with its migrations recorded as GRDB records them.
    conn.executescript(av.ALL_MIGRATIONS_SQL)
    conn.execute("CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
    conn.executemany("INSERT INTO grdb_migrations VALUES (?)", [(name,) for name, _ in av.MIGRATIONS])
    hkv = rows[0]["key_version"] if rows else 1
    hmac_ = av.header_mac(KS[hkv], store_id, created_at, 1, hkv)
    conn.execute("INSERT INTO audit_store VALUES (1, ?, ?, 1, ?, ?)", (store_id, created_at, hkv, hmac_))
    prev = av.ZERO32
    macs = []
    seen_kv = set()
    for cols in rows:
        mac = av.seal(KS[cols["key_version"]], store_id, as_bytes_row(cols), prev)
        if cols["key_version"] not in seen_kv:
            seen_kv.add(cols["key_version"])
            conn.execute("INSERT INTO audit_key_versions VALUES (?, ?)", (cols["key_version"], cols["seq"]))
        conn.execute(f"INSERT INTO audit_entries ({', '.join(av.ROW_COLUMNS)}) VALUES ({', '.join('?' * 18)})",
                     [cols[c] for c in av.ROW_COLUMNS[:-1]] + [mac])
        macs.append(mac)
        prev = mac
    for seq, att_kv, decl in attest:
        row_kv, row_mac = (hkv, hmac_) if seq == 0 else (rows[seq - 1]["key_version"], macs[seq - 1])
        conn.execute("INSERT INTO audit_attestations VALUES (?, ?, ?, ?)",
                     (seq, att_kv, decl, av.attestation_mac(KS[att_kv], store_id, seq, row_kv, row_mac, decl)))
    conn.commit()
    conn.close()
    return macs


TRIGGERS = [m.group(0) for m in re.finditer(r"CREATE TRIGGER .*?END;", av.SCHEMA_SQL, re.S)]
TRIGGER_NAMES = [re.match(r"CREATE TRIGGER (\w+)", t).group(1) for t in TRIGGERS]


def tamper(path: pathlib.Path, *sql: str, restore_triggers: bool = True) -> None:
    """Runs `sql` with the append-only triggers dropped (an attacker with file access)."""
    conn = sqlite3.connect(path)
    for name in TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    for s in sql:
        conn.execute(s)
    if restore_triggers:
        for t in TRIGGERS:
            conn.execute(t)
    conn.commit()
    conn.close()


def ring(statuses: dict[int, str]) -> dict:
    return av.parse_key_text(key_text(statuses).encode(), "test")


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("AUDITDB_KEYS", "AUDITDB_KEY_FILE")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, str(VERIFY_PY), *args], capture_output=True, text=True,
                       env=env if env is not None else clean_env())
    return p.returncode, p.stdout, p.stderr


# ------------------------------------------------------------------------------------------
# 1-2. Vectors, primitives, schema copies
# ------------------------------------------------------------------------------------------


def test_vectors_and_schema() -> None:
    print("vectors and schema")
    key = bytes([0x4A, 0x65, 0x66, 0x65])  # RFC 4231 test case 2: key "Jefe"
    check(av.hmac_sha256(key, b"what do ya want for nothing?").hex()
          == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "HMAC-SHA256 RFC 4231 case 2")
    check(av.i64(-1) == b"\xff" * 8 and av.i64(1) == bytes(7) + b"\x01", "i64 two's complement, big-endian")
    current = json.loads(json.dumps(av.build_vectors(), ensure_ascii=False))
    stored = json.loads(VECTORS.read_text(encoding="utf-8"))
    check(current == stored, "vectors.json is current (regenerate with --emit-vectors)")
    # Internal consistency of vectors.json as another implementer would consume it.
    for r in stored["rows"]:
        check(r["mac"] == r["row_tag"] + r["link_tag"], f"vector seq {r['columns']['seq']}: mac = row_tag || link_tag")
        check(len(bytes.fromhex(r["enc_row"])) == r["enc_row_length"], f"vector seq {r['columns']['seq']}: length")
    for i in range(1, len(stored["rows"])):
        check(stored["rows"][i]["prev_mac"] == stored["rows"][i - 1]["mac"], f"vector row {i + 1} chains")

    want = av.expected_schema_objects()
    check(len(want) == 17, f"schema: 4 tables + 12 triggers + 1 view (got {len(want)})")
    if SCHEMA_FILE.exists():
        check(av.expected_schema_objects(SCHEMA_FILE.read_text()) == av.expected_schema_objects(av.ALL_MIGRATIONS_SQL),
              "all migrations == schema/audit.sql")
    md = FORMAT_MD.read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", md, re.S)
    schema_blocks = [b for b in blocks if "CREATE TABLE audit_entries" in b]
    check(len(schema_blocks) == 1, "FORMAT.md has one ```sql block with the schema")
    if schema_blocks:
        check(av.expected_schema_objects(schema_blocks[0]) == want, "FORMAT.md schema == SCHEMA_SQL")
    # Appendix A: "### A.k Migration `name`" followed by its ```sql block, for every migration.
    listed = re.findall(r"### A\.\d+ Migration `([^`]+)`.*?```sql\n(.*?)```", md, re.S)
    check([name for name, _ in listed] == [name for name, _ in av.MIGRATIONS], "FORMAT.md Appendix A lists every migration in order")
    check([b.strip() for _, b in listed[1:]] == [m[1].strip() for m in av.MIGRATIONS[1:]],
          "FORMAT.md lists the later migrations' SQL exactly")
    example = stored["rows"][1]
    check(example["mac"] in md and example["enc_row"][:64] in md.replace(" ", ""),
          "FORMAT.md's worked example quotes vector seq 2 (ENC_ROW start and stored MAC)")


# ------------------------------------------------------------------------------------------
# 3. Stores and tampering
# ------------------------------------------------------------------------------------------


def test_stores(tmp: pathlib.Path) -> None:
    print("stores")
    both = ring({1: "active", 2: "active"})

    # The vector rows as a store: intact.
    vec_rows = [r["columns"] for r in av.build_vectors()["rows"]]
    vs = tmp / "vectors.sqlite"
    macs = build_store(vs, vec_rows)
    rep = av.verify(str(vs), both, SID)
    check(rep.intact and rep.rows_checked == 4, f"vector store intact ({kinds(rep)})")
    vj = json.loads(VECTORS.read_text())
    check([m.hex() for m in macs] == [r["mac"] for r in vj["rows"]], "store MACs == vector MACs")

    base = tmp / "base.sqlite"
    build_store(base, base_rows())

    def fresh(name: str) -> pathlib.Path:
        p = tmp / f"{name}.sqlite"
        shutil.copy(base, p)
        return p

    rep = av.verify(str(base), both, SID)
    check(rep.intact and rep.rows_checked == 10 and rep.last_seq == 10, f"10-row store intact ({kinds(rep)})")

    p = fresh("update")
    tamper(p, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 5")
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 5)], "changed actor -> mac-mismatch at 5 only")

    p = fresh("update-details")
    tamper(p, "UPDATE audit_entries SET details = '{\"n\":99}' WHERE seq = 8")
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 8)], "changed details (key v2) -> mac-mismatch at 8")

    p = fresh("erase")
    tamper(p, "UPDATE audit_entries SET actor = NULL WHERE seq = 3")
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 3)], "actor set to NULL -> mac-mismatch at 3")

    p = fresh("update-keep-dropped")
    tamper(p, "UPDATE audit_entries SET outcome = 1 WHERE seq = 2", restore_triggers=False)
    k = kinds(av.verify(str(p), both))
    check(("mac-mismatch", 2) in k and k.count(("schema-tampered", None)) == len(TRIGGERS),
          f"dropped triggers -> schema-tampered x12 + mac-mismatch at 2 ({k})")

    p = fresh("delete")
    tamper(p, "DELETE FROM audit_entries WHERE seq = 5")
    rep = av.verify(str(p), both)
    check([(f.kind, f.first, f.last) for f in rep.findings] == [("missing-rows", 5, 5)],
          f"deleted row 5 -> missing-rows 5...5 only ({kinds(rep)})")

    p = fresh("delete-range")
    tamper(p, "DELETE FROM audit_entries WHERE seq BETWEEN 3 AND 6")
    rep = av.verify(str(p), both)
    check([(f.kind, f.first, f.last) for f in rep.findings] == [("missing-rows", 3, 6)], "deleted 3-6 -> missing 3...6")

    p = fresh("delete-first")
    tamper(p, "DELETE FROM audit_entries WHERE seq = 1")
    check(kinds(av.verify(str(p), both)) == [("missing-rows", 1)], "deleted row 1 -> missing-rows at 1")

    # The expected schema follows the recorded migrations (section 11, step 1).
    p = fresh("at-0001")
    tamper(p, "DROP INDEX audit_entries_origin_ref", "DELETE FROM grdb_migrations WHERE identifier = '0002-origin-ref-index'")
    check(av.verify(str(p), both).intact, "a store at migration 0001 (no index) verifies intact")
    p = fresh("index-dropped")
    tamper(p, "DROP INDEX audit_entries_origin_ref")
    check(kinds(av.verify(str(p), both)) == [("schema-tampered", None)], "0002 recorded but its index dropped -> schema-tampered")
    p = fresh("future-migration")
    tamper(p, "INSERT INTO grdb_migrations VALUES ('9999-future')")
    rep = av.verify(str(p), both)
    check([f.message for f in rep.findings] == ["unknown migrations recorded: 9999-future (newer AuditDB, or tampering)"],
          "an unknown recorded migration -> schema-tampered naming it")

    p = fresh("truncate")
    tamper(p, "DELETE FROM audit_entries WHERE seq >= 9")
    rep = av.verify(str(p), both)
    check(rep.intact and rep.rows_checked == 8, "tail truncation is NOT detected (documented limitation)")

    p = fresh("swap")
    cols = ", ".join(c for c in av.ROW_COLUMNS if c != "seq")
    tamper(p, "CREATE TEMP TABLE t AS SELECT * FROM audit_entries WHERE seq IN (3, 4)",
           "DELETE FROM audit_entries WHERE seq IN (3, 4)",
           f"INSERT INTO audit_entries (seq, {cols}) SELECT 7 - seq, {cols} FROM t")
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 3), ("mac-mismatch", 4)],
          "swapped rows 3 and 4 -> mac-mismatch at 3 and 4 (row 5's link follows a bad row: not checked)")

    # A fork: same store id and key, different row 4; splice fork's row 4 into the original.
    fork = tmp / "fork.sqlite"
    build_store(fork, [r if r["seq"] != 3 else dict(r, actor="someone-else") for r in base_rows()])
    p = fresh("splice")
    conn = sqlite3.connect(p)
    conn.execute("ATTACH ? AS fork", (str(fork),))
    for name in TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DELETE FROM audit_entries WHERE seq = 4")
    conn.execute("INSERT INTO audit_entries SELECT * FROM fork.audit_entries WHERE seq = 4")
    for t in TRIGGERS:
        conn.execute(t)
    conn.commit()
    conn.close()
    check(kinds(av.verify(str(p), both)) == [("chain-break", 4)],
          "row 4 spliced from a fork -> chain-break at 4 only")

    # Header.
    p = fresh("header")
    tamper(p, "UPDATE audit_store SET created_at = created_at + 1")
    check(kinds(av.verify(str(p), both)) == [("header-tampered", None)], "changed created_at -> header-tampered")
    p = fresh("header-gone")
    tamper(p, "DELETE FROM audit_store")
    rep = av.verify(str(p), both)
    check(kinds(rep) == [("header-tampered", None)] and rep.rows_checked == 0, "deleted header -> header-tampered")

    # Header format version: must be exactly 1 (checked after the key lookup, before the MAC).
    def claims(n: int) -> str:
        return f"the store header claims format version {n}; this AuditDB reads format 1"
    for fmt in (2, 0, 257, -1):
        p = fresh(f"header-format-{fmt}")
        tamper(p, f"UPDATE audit_store SET format_version = {fmt}")
        rep = av.verify(str(p), both)
        check([(f.kind, f.first, f.message) for f in rep.findings] == [("header-tampered", None, claims(fmt))],
              f"header format_version {fmt} -> header-tampered 'claims format version {fmt}' only")
    p = fresh("header-format-resigned")
    tamper(p, "UPDATE audit_store SET format_version = 2, mac = X'%s'"
           % av.header_mac(KS[1], SID, av.TEST_CREATED_AT, 2, 1).hex())
    rep = av.verify(str(p), both)
    check([(f.kind, f.message) for f in rep.findings] == [("header-tampered", claims(2))],
          "header re-signed by a key holder as format 2 (valid MAC) -> still header-tampered")
    rep = av.verify(str(p), ring({2: "active"}))
    check(kinds(rep) == [("unknown-key-version", None)] + [("unknown-key-version", s) for s in range(1, 7)],
          f"header format 2 signed by a key the ring lacks -> unknown-key-version only ({kinds(rep)})")

    # Another store with the same key: only caught when the store id is pinned.
    other = tmp / "other.sqlite"
    build_store(other, base_rows(), store_id=bytes(16))
    check(av.verify(str(other), both).intact, "another store with the same key passes unpinned (documented)")
    check(kinds(av.verify(str(other), both, SID)) == [("store-identity-mismatch", None)],
          "another store, pinned store id -> store-identity-mismatch")
    p = fresh("foreign-row")
    conn = sqlite3.connect(p)
    conn.execute("ATTACH ? AS o", (str(other),))
    for name in TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DELETE FROM audit_entries WHERE seq = 6")
    conn.execute("INSERT INTO audit_entries SELECT * FROM o.audit_entries WHERE seq = 6")
    for t in TRIGGERS:
        conn.execute(t)
    conn.commit()
    conn.close()
    check(kinds(av.verify(str(p), both)) == [("mac-mismatch", 6)],
          "row 6 copied from another store -> mac-mismatch at 6 only")

    # Wrong key entirely.
    wrong = {1: av.Key(1, "active", "-", bytes(32))}
    k = kinds(av.verify(str(base), {**wrong, 2: both[2]}))
    check(k == [("header-tampered", None)] + [("mac-mismatch", s) for s in range(1, 7)],
          f"wrong key 1 -> header-tampered + mac-mismatch 1..6 ({k})")

    # Unknown and compromised key versions, attestations.
    only1 = ring({1: "active"})
    check(kinds(av.verify(str(base), only1)) == [("unknown-key-version", s) for s in range(7, 11)],
          "ring without v2 -> unknown-key-version at 7..10")
    only2 = ring({2: "active"})
    check(kinds(av.verify(str(base), only2)) == [("unknown-key-version", None)]
          + [("unknown-key-version", s) for s in range(1, 7)], "ring without v1 -> header + rows 1..6 unknown")
    comp1 = ring({1: "compromised", 2: "active"})
    comp2 = ring({1: "active", 2: "compromised"})
    hdr = ("compromised-key", None)  # the header (key version 1) lacks a valid attestation
    hdr_msg = "the store header is signed with key version 1, declared compromised, and not re-attested"
    check(kinds(av.verify(str(base), comp1)) == [hdr] + [("compromised-key", s) for s in range(1, 7)],
          "v1 compromised, no attestations -> compromised-key for the header (no seq) and at 1..6")
    att = tmp / "attested.sqlite"  # the header and rows 1..5 attested under v2, declared at 7
    build_store(att, base_rows(), attest=[(0, 2, 7)] + [(s, 2, 7) for s in range(1, 6)])
    check(kinds(av.verify(str(att), comp1)) == [("compromised-key", 6)],
          "header and 1..5 attested under v2 -> only 6 flagged")
    check(av.verify(str(att), both).intact, "attestations are ignored while no key is compromised")

    def att_variant(name: str, attest, *sql: str) -> pathlib.Path:
        q = tmp / f"{name}.sqlite"
        build_store(q, base_rows(), attest=attest)
        if sql:
            tamper(q, *sql)
        return q

    rows_ok = [(s, 2, 7) for s in range(1, 6)]
    q = att_variant("att-no-header", rows_ok)
    rep = av.verify(str(q), comp1)
    check([(f.kind, f.first, f.last, f.message) for f in rep.findings[:1]] == [("compromised-key", None, None, hdr_msg)]
          and kinds(rep) == [hdr, ("compromised-key", 6)],
          f"header not attested -> store-wide compromised-key (no seq) with its message ({kinds(rep)})")
    q = att_variant("att-header-deleted", [(0, 2, 7)] + rows_ok, "DELETE FROM audit_attestations WHERE seq = 0")
    check(kinds(av.verify(str(q), comp1)) == [hdr, ("compromised-key", 6)],
          "header attestation row deleted -> compromised-key without seq")
    q = att_variant("att-header-tampered", rows_ok, "UPDATE audit_store SET created_at = created_at + 1")
    check(kinds(av.verify(str(q), comp1)) == [("header-tampered", None), ("compromised-key", 6)],
          "header fails its MAC -> header-tampered only; its attestation is not consulted")
    q = att_variant("att-header-format", rows_ok, "UPDATE audit_store SET format_version = 2")
    check(kinds(av.verify(str(q), comp1)) == [("header-tampered", None), ("compromised-key", 6)],
          "header format 2 with a compromised key -> header-tampered only")
    q = att_variant("att-none-v2", [])
    check(kinds(av.verify(str(q), comp2)) == [("compromised-key", s) for s in range(7, 11)],
          "v2 compromised: the header (signed by v1) needs no attestation")

    # Declarations: an attestation counts only if declaration_seq is an existing entry with the
    # action auditdb.key.compromised and a seq greater than the attested seq. Each of these
    # attestations has a valid MAC over what it claims; only the declaration rule rejects them.
    q = att_variant("att-decl-ordinary", [(0, 2, 8), (1, 2, 7), (2, 2, 7), (3, 2, 8), (4, 2, 42), (5, 2, 7)])
    check(kinds(av.verify(str(q), comp1)) == [hdr, ("compromised-key", 3), ("compromised-key", 4),
                                             ("compromised-key", 6)],
          "declaration_seq naming an ordinary entry (header, 3) or no entry (4) -> ignored, flagged")
    q = att_variant("att-decl-order", [(8, 1, 7), (9, 1, 9), (10, 1, 9)])
    check(kinds(av.verify(str(q), comp2)) == [("compromised-key", s) for s in (7, 8, 9, 10)],
          "declaration not after the attested row (7 < 8, 9 = 9, 9 < 10) -> ignored, flagged")
    q = att_variant("att-decl-renamed", [(0, 2, 7)] + rows_ok,
                    f"UPDATE audit_entries SET action = '{DECLARATION} ' WHERE seq = 7")
    k = kinds(av.verify(str(q), comp1))
    check(k == [hdr] + [("compromised-key", s) for s in range(1, 7)] + [("mac-mismatch", 7)],
          f"declaration's action changed (not exactly '{DECLARATION}') -> every attestation ignored ({k})")
    q = att_variant("att-decl-deleted", [(0, 2, 7)] + rows_ok, "DELETE FROM audit_entries WHERE seq = 7")
    rep = av.verify(str(q), comp1)
    check([(f.kind, f.first) for f in rep.findings] == [hdr] + [("compromised-key", s) for s in range(1, 7)]
          + [("missing-rows", 7)], f"declaration entry deleted -> attestations ignored ({kinds(rep)})")

    # Attesting key version not a valid u32 (the MAC does not cover it: 2 + 2^32 must not pass as 2).
    q = att_variant("att-kv-u32", [(0, 2, 7)] + rows_ok,
                    "UPDATE audit_attestations SET key_version = key_version + 4294967296 WHERE seq IN (0, 2)",
                    "UPDATE audit_attestations SET key_version = -4294967294 WHERE seq = 3")
    check(kinds(av.verify(str(q), comp1)) == [hdr] + [("compromised-key", s) for s in (2, 3, 6)],
          "attesting key_version 2 + 2^32 or negative -> ignored (header, 2, 3 flagged)")

    # A real declaration but a MAC that does not match; an attesting key that is compromised; a short MAC.
    p = tmp / "attested-bad.sqlite"
    shutil.copy(att, p)
    tamper(p, "UPDATE audit_attestations SET declaration_seq = 9 WHERE seq = 2",
           "UPDATE audit_attestations SET key_version = 1 WHERE seq = 3",
           "UPDATE audit_attestations SET mac = X'00' WHERE seq = 0")
    check(kinds(av.verify(str(p), comp1)) == [hdr] + [("compromised-key", s) for s in (2, 3, 6)],
          "bad attestation MAC / attesting key compromised / short MAC -> flagged")
    att1 = tmp / "attested-by-v1.sqlite"
    build_store(att1, base_rows(), attest=[(8, 1, 9)])
    check(kinds(av.verify(str(att1), comp2)) == [("compromised-key", s) for s in (7, 9, 10)],
          "v2 compromised, row 8 attested by v1 (declared at 9) -> 7, 9, 10 flagged")

    # Malformed rows and rows below seq 1.
    p = fresh("malformed")
    tamper(p, "UPDATE audit_entries SET outcome = 7 WHERE seq = 2",
           "UPDATE audit_entries SET mac = X'00' WHERE seq = 5",
           "UPDATE audit_entries SET format_version = 2 WHERE seq = 8")
    k = kinds(av.verify(str(p), both))
    check(k == [("malformed-row", 2), ("malformed-row", 5), ("malformed-row", 8)],
          f"undefined outcome / short MAC / format 2 -> malformed-row at 2, 5, 8 ({k})")
    p = fresh("seq0")
    tamper(p, "INSERT INTO audit_entries SELECT 0, recorded_at, occurred_at, tenant, actor, action, resource_type,"
              " resource_id, outcome, severity, correlation_id, source, details, origin, origin_ref,"
              " format_version, key_version, mac FROM audit_entries WHERE seq = 1",
           "INSERT INTO audit_entries SELECT -3, recorded_at, occurred_at, tenant, actor, action, resource_type,"
              " resource_id, outcome, severity, correlation_id, source, details, origin, origin_ref,"
              " format_version, key_version, mac FROM audit_entries WHERE seq = 1")
    rep = av.verify(str(p), both)
    check([(f.kind, f.first, f.last) for f in rep.findings] == [("unexpected-rows", -3, 0)],
          "rows at seq 0 and -3 -> unexpected-rows -3...0")

    # An empty store.
    empty = tmp / "empty.sqlite"
    build_store(empty, [])
    rep = av.verify(str(empty), both, SID)
    check(rep.intact and rep.rows_checked == 0, "empty store intact")

    # WAL store read while a writer holds it open with uncheckpointed rows.
    walp = tmp / "wal.sqlite"
    build_store(walp, sample_rows(5), wal=True)
    writer = sqlite3.connect(walp)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("DELETE FROM audit_key_versions WHERE 0")  # start using the WAL
    writer.commit()
    rep = av.verify(str(walp), both, SID)
    writer.close()
    check(rep.intact and rep.rows_checked == 5, "WAL store read-only while a writer is open")

    # Command line.
    kf = write_key_file(tmp / "keys", {1: "active", 2: "active"})
    rc, out, _ = run_cli("--store", str(base), "--key-file", kf, "--store-id", SID.hex())
    check(rc == 0 and out.startswith("intact: 10 rows"), f"cli intact -> exit 0 ({rc}, {out.strip()})")
    rc, out, _ = run_cli("--store", str(tmp / "update.sqlite"), "--key-file", kf, "--json")
    j = json.loads(out) if rc == 1 else {}
    check(rc == 1 and j.get("findings", [{}])[0].get("kind") == "mac-mismatch"
          and j["findings"][0]["first_seq"] == 5, "cli --json findings -> exit 1")
    rc, out, _ = run_cli("--store", str(tmp / "delete.sqlite"), "--key-file", kf)
    check(rc == 1 and "missing-rows at seq 5" in out, "cli text findings name kind and seq")
    rc, _, err = run_cli("--store", str(tmp / "nope.sqlite"), "--key-file", kf)
    check(rc == 2, "cli missing store -> exit 2")
    loose = write_key_file(tmp / "keys-0644", {1: "active"}, mode=0o644)
    rc, _, err = run_cli("--store", str(base), "--key-file", loose)
    check(rc == 2 and "chmod 600" in err, "cli key file readable by others -> exit 2")
    rc, _, _ = run_cli("--store", str(base), "--key-file", kf, "--store-id", "abc")
    check(rc == 2, "cli bad --store-id -> exit 2")
    rc, _, _ = run_cli("--key-file", kf)
    check(rc == 2, "cli without --store -> exit 2")
    junk = tmp / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    rc, out, _ = run_cli("--store", str(junk), "--key-file", kf)
    check(rc == 1 and "corruption" in out, f"cli non-database file -> corruption, exit 1 ({rc})")
    env = clean_env(AUDITDB_KEYS=f"1:{K1.hex()},2:{K2.hex()}:active")
    rc, out, _ = run_cli("--store", str(base), env=env)
    check(rc == 0, "cli keys from AUDITDB_KEYS")
    env = clean_env(AUDITDB_KEYS=f"1:{K1.hex()}:compromised 2:{K2.hex()}")
    rc, out, _ = run_cli("--store", str(base), env=env)
    check(rc == 1 and out.count("compromised-key") == 7 and "compromised-key: the store header" in out,
          "cli AUDITDB_KEYS with a compromised version (header + 6 rows)")
    env = clean_env(AUDITDB_KEYS=f"1:{K1.hex()}:compromised\n2:{K2.hex()}\n")
    rc, out, _ = run_cli("--store", str(att), env=env)
    check(rc == 1 and out.count("compromised-key") == 1, "cli AUDITDB_KEYS entries separated by newlines")
    # Every entry must have exactly 2 or 3 ':'-separated fields; entries are numbered from 1,
    # counting only non-empty ones. Exit 2 with the reference's message, never a traceback.
    for value, number, found in (("garbage", 1, 1),
                                 (f",, 1:{K1.hex()}:compromised  2:{K2.hex()}:active:x", 2, 4),
                                 (f"1:{K1.hex()},2", 2, 1),
                                 (f"1:{K1.hex()}:active:", 1, 4),
                                 (":::::", 1, 6)):
        rc, out, err = run_cli("--store", str(base), env=clean_env(AUDITDB_KEYS=value))
        want = (f"error: environment variable AUDITDB_KEYS, entry {number}: "
                f"expected VERSION:HEX or VERSION:HEX:STATUS (found {found} field(s))")
        check(rc == 2 and err.strip() == want and not out,
              f"cli AUDITDB_KEYS entry {number} with {found} field(s) -> exit 2, '{want}' ({rc}, {err.strip()[:120]})")
    for value in ("", "1::active", f"0:{K1.hex()}", f"1:{K1.hex()[:60]}", f"1:{K1.hex()}:revoked",
                  f"1:{K1.hex()}:compromised", "\u00e9:\u00e9"):
        rc, out, err = run_cli("--store", str(base), env=clean_env(AUDITDB_KEYS=value))
        check(rc == 2 and err.startswith("error: ") and "Traceback" not in err,
              f"cli AUDITDB_KEYS {value[:20]!r} -> exit 2 with a message ({rc}, {err.strip()[:100]})")
    rc, _, err = run_cli("--store", str(base), env=clean_env())
    check(rc == 2 and "AUDITDB_KEYS is not set" in err, "cli without any keys -> exit 2")

    # Key file parsing.
    def bad(text: str) -> bool:
        try:
            av.parse_key_text(text.encode(), "t")
            return False
        except av.KeyError_:
            return True
    h = "auditdb-keys v1\n"
    good = f"key 1 active - {K1.hex()}\n"
    check(not bad("# c\n\n  " + h + "\t# x\n" + good.replace(" ", "\t") + "\r\n"), "key file: comments, tabs, CRLF")
    check(not bad(h + good.replace(K1.hex(), K1.hex().upper())), "key file: upper-case hex")
    check(bad(good), "key file: missing header")
    check(bad(h + good + good), "key file: duplicate version")
    check(bad(h + good.replace("key 1", "key 0")), "key file: version 0")
    check(bad(h + good.replace("active", "revoked")), "key file: unknown status")
    check(bad(h + good.replace(K1.hex(), K1.hex()[:62])), "key file: short key")
    check(bad(h + good.replace(K1.hex(), "zz" + K1.hex()[2:])), "key file: bad hex")
    check(bad(h + good.replace("active", "compromised")), "key file: no active key")
    check(bad(h + good.rstrip("\n") + " # trailing\n"), "key file: trailing comment is a 6th field")


# ------------------------------------------------------------------------------------------
# 4. The reference C code against the vectors
# ------------------------------------------------------------------------------------------


class AdbBytes(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("len", ctypes.c_int64)]


class AdbRow(ctypes.Structure):
    _fields_ = [
        ("seq", ctypes.c_int64), ("recorded_at", ctypes.c_int64), ("occurred_at", ctypes.c_int64),
        ("has_occurred_at", ctypes.c_int32), ("key_version", ctypes.c_uint32),
        ("format_version", ctypes.c_uint8), ("outcome", ctypes.c_uint8), ("severity", ctypes.c_uint8),
        ("origin", ctypes.c_uint8), ("origin_ref", ctypes.c_int64), ("has_origin_ref", ctypes.c_int32),
    ] + [(n, AdbBytes) for n in ("tenant", "actor", "action", "resource_type", "resource_id", "correlation_id",
                                 "source", "details")]


def test_reference_c(tmp: pathlib.Path) -> None:
    print("reference C code (Sources/CAuditCore/audit_core.c) against vectors.json")
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc or not C_SOURCE.exists():
        print("  skipped: no C compiler or no audit_core.c")
        return
    lib_path = tmp / "libauditcore.so"
    r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-I", str(C_INCLUDE), str(C_SOURCE), "-o", str(lib_path),
                        "-lcrypto"], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  skipped: could not compile against OpenSSL: {r.stderr.strip()[:200]}")
        return
    lib = ctypes.CDLL(str(lib_path))
    B = ctypes.c_char_p
    lib.adb_keyset_size.restype = ctypes.c_size_t
    lib.adb_row_encode.restype = ctypes.c_size_t
    lib.adb_row_encode.argtypes = [ctypes.c_void_p, B, ctypes.POINTER(AdbRow), ctypes.c_char_p, ctypes.c_size_t]
    lib.adb_row_seal.argtypes = [ctypes.c_void_p, B, ctypes.POINTER(AdbRow), B, ctypes.c_char_p]
    lib.adb_row_check.argtypes = [ctypes.c_void_p, B, ctypes.POINTER(AdbRow), B, B, ctypes.c_size_t]
    lib.adb_field_nonce.argtypes = [ctypes.c_void_p, B, ctypes.c_int64, ctypes.c_uint8, ctypes.c_char_p]
    lib.adb_commitment.argtypes = [B, ctypes.c_uint8, AdbBytes, ctypes.c_char_p]
    lib.adb_header_mac.argtypes = [ctypes.c_void_p, B, ctypes.c_int64, ctypes.c_uint8, ctypes.c_uint32, ctypes.c_char_p]
    lib.adb_attestation_mac.argtypes = [ctypes.c_void_p, B, ctypes.c_int64, ctypes.c_uint32, B, ctypes.c_int64,
                                        ctypes.c_char_p]
    lib.adb_hmac_sha256.argtypes = [B, ctypes.c_size_t, B, ctypes.c_size_t, ctypes.c_char_p]
    lib.adb_keyset_init.argtypes = [ctypes.c_void_p, B]

    vec = json.loads(VECTORS.read_text(encoding="utf-8"))
    sid = bytes.fromhex(vec["store_id"])
    keysets = {}
    for k in vec["keys"]:
        master = bytes.fromhex(k["master"])
        ks = ctypes.create_string_buffer(lib.adb_keyset_size())
        lib.adb_keyset_init(ks, master)
        keysets[k["version"]] = ks
        for label, name in ((b"AuditDB/v1/mac-key", "k_mac"), (b"AuditDB/v1/nonce-key", "k_nonce")):
            out = ctypes.create_string_buffer(32)
            lib.adb_hmac_sha256(master, 32, label, len(label), out)
            check(out.raw.hex() == k[name], f"C: key {k['version']} {name}")

    out = ctypes.create_string_buffer(32)
    h = vec["header"]
    lib.adb_header_mac(keysets[h["key_version"]], sid, h["created_at"], h["format_version"], h["key_version"], out)
    check(out.raw.hex() == h["mac"], "C: header mac")

    keep = []
    for r in vec["rows"]:
        c = r["columns"]
        row = AdbRow()
        row.seq, row.recorded_at = c["seq"], c["recorded_at"]
        row.has_occurred_at, row.occurred_at = (0, 0) if c["occurred_at"] is None else (1, c["occurred_at"])
        row.has_origin_ref, row.origin_ref = (0, 0) if c["origin_ref"] is None else (1, c["origin_ref"])
        row.key_version, row.format_version = c["key_version"], c["format_version"]
        row.outcome, row.severity, row.origin = c["outcome"], c["severity"], c["origin"]
        for name in av.TEXT_COLUMNS:
            hx = r["text_utf8_hex"][name]
            if hx is None:
                setattr(row, name, AdbBytes(None, -1))
            else:
                data = bytes.fromhex(hx)
                keep.append(data)
                setattr(row, name, AdbBytes(data, len(data)))
        ks = keysets[c["key_version"]]
        seq = c["seq"]
        for fid, name in ((1, "actor"), (2, "source"), (3, "details")):
            nonce = ctypes.create_string_buffer(32)
            lib.adb_field_nonce(ks, sid, seq, fid, nonce)
            check(nonce.raw.hex() == r["nonces"][name], f"C: seq {seq} nonce {name}")
            com = ctypes.create_string_buffer(32)
            lib.adb_commitment(nonce.raw, fid, getattr(row, name), com)
            check(com.raw.hex() == r["commitments"][name], f"C: seq {seq} commitment {name}")
        n = lib.adb_row_encode(ks, sid, ctypes.byref(row), None, 0)
        buf = ctypes.create_string_buffer(n)
        lib.adb_row_encode(ks, sid, ctypes.byref(row), buf, n)
        check(buf.raw.hex() == r["enc_row"], f"C: seq {seq} ENC_ROW")
        mac = ctypes.create_string_buffer(32)
        prev = bytes.fromhex(r["prev_mac"])
        lib.adb_row_seal(ks, sid, ctypes.byref(row), prev, mac)
        check(mac.raw.hex() == r["mac"], f"C: seq {seq} stored mac")
        check(lib.adb_row_check(ks, sid, ctypes.byref(row), prev, mac.raw, 32) == 0, f"C: seq {seq} adb_row_check")
    a = vec["attestation"]
    lib.adb_attestation_mac(keysets[a["attesting_key_version"]], sid, a["seq"], a["row_key_version"],
                            bytes.fromhex(a["row_mac"]), a["declaration_seq"], out)
    check(out.raw.hex() == a["mac"], "C: attestation mac")
    ha = vec["header_attestation"]
    check(ha["seq"] == 0 and ha["row_mac"] == h["mac"] and ha["row_key_version"] == h["key_version"],
          "vectors: header_attestation attests the header (seq 0, header mac and key version)")
    lib.adb_attestation_mac(keysets[ha["attesting_key_version"]], sid, ha["seq"], ha["row_key_version"],
                            bytes.fromhex(ha["row_mac"]), ha["declaration_seq"], out)
    check(out.raw.hex() == ha["mac"], "C: header attestation mac")


def main() -> int:
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-c", action="store_true", help="skip compiling the reference C code")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    VERBOSE = args.verbose
    with tempfile.TemporaryDirectory(prefix="auditdb-selftest-") as d:
        tmp = pathlib.Path(d)
        test_vectors_and_schema()
        test_stores(tmp)
        if not args.no_c:
            test_reference_c(tmp)
        print("checkpoints and export bundles (auditdb_verify_export.py)")
        import auditdb_verify_export
        FAILURES.extend(auditdb_verify_export.selftest())
    if FAILURES:
        print(f"selftest: {len(FAILURES)} FAILURE(S)")
        return 1
    print("selftest: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
