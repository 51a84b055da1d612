#!/usr/bin/env python3
"""shipping.py - central shipping (docs/FORMAT.md section 22.7): proves shipped rows against the
witness's checkpoints with public keys only. Written from the text of the format, standard
library only.

    psql -X -At -f docs/verifier/shipped_dump.sql "postgresql://auditor@db/witness" > dump.json
    python3 docs/verifier/shipping.py dump.json
    python3 docs/verifier/shipping.py --check-vectors [docs/test-vectors/shipping.json]

The first form verifies a dump of the central tables ("auditdb-shipped-dump v1": the registered
keys, the witness's checkpoints, the batches, the entries and the late tombstones (absent from
dumps made before that table existed: read as none), bytea as lowercase hex, times as
microseconds since the epoch): exit 0 when every store is intact, 1 with findings (one line each,
`store S: KIND at seqs A...B: message`), 2 on an error of the run. The second applies every case
of the vectors to their dump and checks that exactly the listed findings come out (selftest.py
runs it). The whole dump is held in memory: this is a reference, not a tool for a large table
(the engine's `auditdb-fleet verify-shipped` streams).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import auditdb_verify_export as ave  # noqa: E402  (Ed25519, ENC_ROW, the tree, checkpoints)
import consistency  # noqa: E402  (section 22.2)
import retention  # noqa: E402  (section 20.3: the expiry entry's details)

HERE = pathlib.Path(__file__).resolve().parent
VECTORS = HERE.parent / "test-vectors" / "shipping.json"
DUMP_FORMAT = "auditdb-shipped-dump v1"
KINDS = ["changed", "missing", "extra", "unproven", "batch-changed"]
EXPIRY_ACTION = "auditdb.retention.expired"
TOMB_LENGTH = 164
FIELDS = [("actor", 1), ("source", 2), ("details", 3)]
# The value columns an expired row must leave NULL (rule 0).
VALUE_COLUMNS = ["occurred_at", "tenant", "actor", "resource_type", "resource_id", "outcome", "severity",
                 "correlation_id", "source", "details", "origin", "origin_ref", "format_version", "key_version",
                 "actor_nonce", "source_nonce", "details_nonce", "actor_commitment", "source_commitment",
                 "details_commitment"]


def _b(v) -> bytes | None:
    return None if v is None else bytes.fromhex(v)


def _t(v) -> bytes | None:
    return None if v is None else v.encode("utf-8")


def _in(v, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def field_state(e: dict, f: int) -> str:
    """shown, withheld or erased (bit f-1 of `erased`, then of `withheld`; an invalid mask counts as 0)."""
    bit = 1 << (f - 1)
    erased = e["erased"] if _in(e["erased"], 0, 7) else 0
    withheld = e["withheld"] if _in(e["withheld"], 0, 7) else 0
    return "erased" if erased & bit else ("withheld" if withheld & bit else "shown")


def shape_problem(e: dict) -> str | None:
    """Rule 0 of 22.7: the columns a row, or an expired row, must and must not hold."""
    if e["action"] is None:
        if e["tombstone"] is None or e["expiry_seq"] is None:
            return "an expired row (no action) without its tombstone and expiry seq"
        for name in VALUE_COLUMNS:
            if e[name] is not None:
                return f"an expired row (no action) holds a value in {name}"
        if e["withheld"] != 0 or e["erased"] != 0:
            return "an expired row (no action) has withheld or erased bits"
        tomb = _b(e["tombstone"])
        if len(tomb) == TOMB_LENGTH and e["recorded_at"] != int.from_bytes(tomb[76:84], "big", signed=True):
            return "an expired row's recorded_at is not its tombstone's"
        return None
    if e["tombstone"] is not None or e["expiry_seq"] is not None:
        return "a row with an action also holds a tombstone or expiry seq"
    for name in ("outcome", "severity", "origin", "format_version"):
        if not _in(e[name], 0, 255):
            return f"{name} is {e[name]}, not an integer 0...255"
    if not _in(e["key_version"], 0, 2**32 - 1):
        return f"key_version is {e['key_version']}, not an integer 0...4294967295"
    for name in ("withheld", "erased"):
        if not _in(e[name], 0, 7):
            return f"{name} is {e[name]}, not an integer 0...7"
    if not isinstance(e["recorded_at"], int):
        return "recorded_at is NULL"
    return None


def row_problem(store_id: bytes, e: dict) -> str | None:
    """Rules 0 and 1 of 22.7 for one central row (a dict of the columns of auditdb_ship.entries)."""
    seq, leaf = e["seq"], _b(e["leaf"])
    if seq < 1 or leaf is None or len(leaf) != 32:
        return "no 32-byte leaf hash"
    shape = shape_problem(e)
    if shape:
        return shape
    if e["action"] is None:
        tomb = _b(e["tombstone"])
        if len(tomb) != TOMB_LENGTH:
            return f"its tombstone is not {TOMB_LENGTH} bytes"
        if int.from_bytes(tomb[0:8], "big") != seq or tomb[44:76] != leaf:
            return "its tombstone names another seq or another leaf hash"
        return None
    commitments = b""
    for name, f in FIELDS:
        value, nonce, c = _t(e[name]), _b(e[name + "_nonce"]), _b(e[name + "_commitment"])
        if c is None or len(c) != 32:
            return f"the {name} commitment is not 32 bytes"
        if field_state(e, f) != "shown":
            if value is not None or nonce is not None:
                return f"a withheld or erased {name} holds a value or nonce"
        elif value is None:
            if nonce is not None or c != bytes(32):
                return f"the {name} is NULL but its commitment is not 32 zero bytes"
        elif nonce is None or len(nonce) != 32:
            return f"the shown {name} has no 32-byte nonce"
        elif ave.commitment(nonce, f, value) != c:
            return f"the {name} does not match its commitment"
        commitments += c
    entry = {"seq": seq, "formatVersion": e["format_version"], "keyVersion": e["key_version"],
             "recordedAt": e["recorded_at"], "occurredAt": e["occurred_at"], "tenant": e["tenant"],
             "action": e["action"], "resourceType": e["resource_type"], "resourceId": e["resource_id"],
             "outcome": e["outcome"], "severity": e["severity"], "correlationId": e["correlation_id"],
             "origin": e["origin"], "originRef": e["origin_ref"]}
    if ave.leaf_hash(ave.enc_row(store_id, entry, commitments)) != leaf:
        return "its values do not hash to its leaf hash"
    return None


class Frontier:
    """Section 16.2: the roots of the perfect subtrees along the right edge, largest first."""

    def __init__(self):
        self.size, self.hashes = 0, []

    def append(self, h: bytes):
        n = self.size
        while n & 1:
            h = ave.node_hash(self.hashes.pop(), h)
            n >>= 1
        self.hashes.append(h)
        self.size += 1

    def root(self) -> bytes | None:
        if not self.hashes:
            return None
        r = self.hashes[-1]
        for f in reversed(self.hashes[:-1]):
            r = ave.node_hash(f, r)
        return r


def split_proof(data: bytes) -> list[bytes]:
    """The hashes of a batch's proof; a short last piece is kept, so the proof fails (22.2)."""
    return [data[i:i + 32] for i in range(0, len(data), 32)]


def verify_store(store_id: bytes, entries: list[dict], batches: list[dict], checkpoints: dict,
                 late_rows: list[dict] = ()) -> list[tuple]:
    """Rules 1-4 of 22.7 and the findings of its table, for one store: (kind, first, last, message).
    `checkpoints` maps (seq, signature bytes) to the merkle root of the store's valid checkpoints;
    `late_rows` are the store's rows of table `tombstones` (late tombstones)."""
    high = max((b["last_seq"] for b in batches), default=0)
    by_last: dict[int, list[dict]] = {}
    for b in batches:
        by_last.setdefault(b["last_seq"], []).append(b)
    findings, extra, failed, tombstones = [], [], [], {}
    frontier, expected, broken = Frontier(), 1, False
    late_by_seq: dict[int, tuple[int, bytes]] = {}  # seq -> (expiry seq, ENC_TOMB), until its row is read
    late: dict[int, list[tuple[int, bytes]]] = {}  # expiry seq -> [(seq, ENC_TOMB)]
    counts: dict[int, int] = {}
    for r in late_rows:
        counts[r["seq"]] = counts.get(r["seq"], 0) + 1
    for r in late_rows:
        seq, tomb = r["seq"], _b(r["tombstone"]) or b""
        if counts[seq] > 1:
            continue  # every one left out, reported once below
        if (len(tomb) != TOMB_LENGTH or int.from_bytes(tomb[0:8], "big") != seq or seq < 1
              or not isinstance(r["expiry_seq"], int) or seq >= r["expiry_seq"]):
            findings.append(("changed", seq, seq, "a late tombstone that is malformed or names an expiry entry below it"))
        else:
            late_by_seq[seq] = (r["expiry_seq"], tomb)
    for seq in sorted(q for q, n in counts.items() if n > 1):
        findings.append(("changed", seq, seq, f"{counts[seq]} late tombstones at this seq"))

    def check_batch(b):
        nonlocal failed
        if broken or b["first_seq"] > b["last_seq"]:
            return
        root = checkpoints.get((b["checkpoint_seq"], _b(b["checkpoint_signature"])))
        if root is None:
            failed.append((b, False))
            return
        mine = frontier.root()
        if mine is None or not consistency.verify_consistency(b["last_seq"], b["checkpoint_seq"], mine, root,
                                                              split_proof(_b(b["proof"]))):
            failed.append((b, True))
            return
        for old, _ in failed:
            findings.append(("batch-changed", old["first_seq"], old["last_seq"], "the batch record was changed"))
        failed = []

    def check_expiry(e):
        by_seq = dict(tombstones.pop(e["seq"], []))
        by_seq.update(late.pop(e["seq"], []))  # equal to the expired row's where both exist (checked at the row)
        listed = sorted(by_seq.items())
        if field_state(e, 3) != "shown" or e["details"] is None:
            findings.append(("changed", e["seq"], e["seq"], "an expiry entry whose details are not shipped"))
            return
        try:
            d = retention.parse_expiry_details(_t(e["details"]), e["seq"])
        except retention.ExpiryDetailsError as err:
            findings.append(("changed", e["seq"], e["seq"], f"an expiry entry whose details cannot be read: {err}"))
            return
        if len(listed) != d.count or ave.sha256(b"".join(t for _, t in listed)) != d.digest:
            findings.append(("changed", d.first, d.last, f"the expired rows shipped for the expiry entry at {e['seq']} are not the ones it lists"))

    for e in entries:
        seq = e["seq"]
        if seq > high:
            extra.append(seq)
            continue
        if seq < expected:
            findings.append(("extra", seq, seq, "a second row at this seq"))
            continue
        if seq > expected:
            findings.append(("missing", expected, seq - 1, "shipped rows missing"))
            broken = True
        expected = seq + 1
        if seq in late_by_seq:
            expiry_seq, tomb = late_by_seq.pop(seq)
            if tomb[44:76] != _b(e["leaf"]) or (e["action"] is None and _b(e["tombstone"]) != tomb):
                findings.append(("changed", seq, seq, "its late tombstone is not of this row"))
            else:
                late.setdefault(expiry_seq, []).append((seq, tomb))
        problem = row_problem(store_id, e)
        if problem:
            findings.append(("changed", seq, seq, problem))
        if e["action"] is None:
            tombstones.setdefault(e["expiry_seq"] or 0, []).append((seq, _b(e["tombstone"]) or b""))
        elif e["action"] == EXPIRY_ACTION and (e["origin"] if _in(e["origin"], 0, 255) else 0) == 0:
            check_expiry(e)
        leaf = _b(e["leaf"])
        if leaf is not None and len(leaf) == 32 and not broken:
            frontier.append(leaf)
        else:
            broken = True
        for b in by_last.get(seq, []):
            check_batch(b)
    if expected <= high:
        findings.append(("missing", expected, high, "shipped rows missing"))
    if failed:
        b, provable = failed[0]
        findings.append(("changed" if provable else "unproven", b["first_seq"], b["last_seq"],
                         "these rows do not hash to the tree the checkpoint signs" if provable
                         else "their batch names a checkpoint the witness does not hold validly signed under a registered key"))
    for seq in extra:
        if findings and findings[-1][0] == "extra" and findings[-1][2] == seq - 1 and findings[-1][1] > high:
            findings[-1] = ("extra", findings[-1][1], seq, findings[-1][3])
        else:
            findings.append(("extra", seq, seq, f"above the highest shipped batch (seq {high})"))
    for expiry_seq, listed in sorted(tombstones.items()):
        if expiry_seq > high:
            beyond = [(seq, t) for seq, t in listed
                      if not any(b["first_seq"] <= seq <= b["last_seq"] and b["checkpoint_seq"] >= expiry_seq for b in batches)]
            if beyond:
                findings.append(("changed", beyond[0][0], beyond[-1][0],
                                 f"expired rows naming seq {expiry_seq} as their expiry entry, above the checkpoint their batch is proven against"))
        else:
            findings.append(("changed", listed[0][0], listed[-1][0],
                             f"expired rows naming seq {expiry_seq} as their expiry entry, which is no shipped expiry entry"))
    for seq in sorted(late_by_seq):
        findings.append(("changed", seq, seq, "a late tombstone of a seq without a shipped row"))
    for expiry_seq, listed in sorted(late.items()):
        findings.append(("changed", listed[0][0], listed[-1][0],
                         f"late tombstones naming seq {expiry_seq} as their expiry entry, which is no shipped expiry entry"))
    return sorted(findings, key=lambda f: (KINDS.index(f[0]), f[1], f[2]))


def verify_dump(dump: dict) -> list[tuple]:
    """Every store's findings: (store hex, kind, first seq, last seq, message)."""
    if dump.get("format") != DUMP_FORMAT:
        raise ValueError(f"not a dump of the central tables (format {DUMP_FORMAT!r})")
    registered: dict[str, dict[int, bytes]] = {}
    for k in dump["keys"]:
        registered.setdefault(k["store_id"], {})[k["key_version"]] = _b(k["public_key"])
    valid: dict[str, dict] = {}
    for c in dump["checkpoints"]:
        cp = {"storeId": c["store_id"], "seq": c["seq"], "chainHead": c["chain_head"], "merkleRoot": c["merkle_root"],
              "time": c["signed_time"], "keyVersion": c["key_version"], "publicKey": c["public_key"],
              "signature": c["signature"]}
        if ave.checkpoint_invalidity(cp, registered.get(c["store_id"], {})) is None:
            valid.setdefault(c["store_id"], {})[(c["seq"], _b(c["signature"]))] = _b(c["merkle_root"])
    entries: dict[str, list[dict]] = {}
    for e in dump["entries"]:
        entries.setdefault(e["store_id"], []).append(e)
    batches: dict[str, list[dict]] = {}
    for b in dump["batches"]:
        batches.setdefault(b["store_id"], []).append(b)
    late: dict[str, list[dict]] = {}
    for t in dump.get("tombstones", []):  # dumps made before table tombstones existed lack it
        late.setdefault(t["store_id"], []).append(t)
    out = []
    for store in sorted(set(entries) | set(batches) | set(late)):
        rows = sorted(entries.get(store, []), key=lambda e: e["seq"])
        for kind, a, b, message in verify_store(bytes.fromhex(store), rows, batches.get(store, []), valid.get(store, {}),
                                                late.get(store, [])):
            out.append((store, kind, a, b, message))
    return out


def apply_changes(dump: dict, changes: list[dict]) -> dict:
    """A case's changes (docs/test-vectors/README.md, shipping.json) applied to a copy of the dump."""
    out = copy.deepcopy(dump)
    for ch in changes:
        rows = out[ch["table"]]

        def matches(r):
            if r["store_id"] != ch["store_id"]:
                return False
            if "seq" in ch:
                return r["seq"] == ch["seq"]
            if "first_seq" in ch:
                return r["first_seq"] == ch["first_seq"]
            return True
        i = next(i for i, r in enumerate(rows) if matches(r))
        if "delete" in ch:
            del rows[i]
        elif "copy_to_seq" in ch:
            rows.append(dict(rows[i], seq=ch["copy_to_seq"]))
        else:
            rows[i].update(ch["set"])
    return out


def check_vectors(path: pathlib.Path = VECTORS) -> list[str]:
    v = json.loads(path.read_text(encoding="utf-8"))
    errors = []
    for case in v["cases"]:
        got = sorted((s, k, a, b) for s, k, a, b, _ in verify_dump(apply_changes(v["dump"], case["changes"])))
        want = sorted((f["store_id"], f["kind"], f["from_seq"], f["to_seq"]) for f in case["findings"])
        if got != want:
            errors.append(f"case {case['name']}: got {got}, want {want}")
    if not any(c["name"] == "intact" and not c["findings"] for c in v["cases"]):
        errors.append("the vectors have no intact case")
    return errors


def selftest() -> list[str]:
    return [f"shipping.json: {e}" for e in check_vectors()]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", nargs="?")
    ap.add_argument("--check-vectors", nargs="?", const=str(VECTORS))
    args = ap.parse_args(argv)
    try:
        if args.check_vectors:
            errors = check_vectors(pathlib.Path(args.check_vectors))
            for e in errors:
                print(e)
            print("shipping vectors: " + ("FAILED" if errors else "ok"))
            return 1 if errors else 0
        if not args.dump:
            ap.error("give a dump of the central tables (docs/verifier/shipped_dump.sql) or --check-vectors")
        dump = json.loads(pathlib.Path(args.dump).read_text(encoding="utf-8"))
        findings = verify_dump(dump)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"error: {e!r}", file=sys.stderr)
        return 2
    for store, kind, a, b, message in findings:
        at = f"seq {a}" if a == b else f"seqs {a}...{b}"
        print(f"store {ave.sj.escaped(str(store))}: {kind} at {at}: {ave.sj.escaped(message)}")
    stores = len({e["store_id"] for e in dump["entries"]} | {b["store_id"] for b in dump["batches"]}
                 | {t["store_id"] for t in dump.get("tombstones", [])})
    print(f"shipped entries intact: {stores} store(s), {len(dump['entries'])} row(s)" if not findings
          else f"shipped entries NOT intact: {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
