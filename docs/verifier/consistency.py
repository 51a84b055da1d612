#!/usr/bin/env python3
"""consistency.py - consistency proofs between checkpoints (docs/FORMAT.md section 22), written
from the text of the format, standard library only.

    python3 docs/verifier/consistency.py ANCHOR_DIR [ANCHOR_DIR...] --public-key FILE --store-id HEX
    python3 docs/verifier/consistency.py --check-vectors [docs/test-vectors/consistency.json]

The first form checks a store's anchored checkpoints against each other with the proof files
beside them (section 22.4), without the rows: exit 0 when consistent, 1 with findings (one line
each, `KIND at seqs A...B: message`), 2 on an error of the run. The second recomputes every
proof of the vectors from their leaves and checks every verdict (selftest.py runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import auditdb_verify_export as ave  # noqa: E402  (Ed25519, the tree, the checkpoint's JSON)

HERE = pathlib.Path(__file__).resolve().parent
VECTORS = HERE.parent / "test-vectors" / "consistency.json"
PROOF_SUFFIX = ".consistency.json"
PROOF_FORMAT = "auditdb-consistency v1"
MAX_HASHES = 128
STORE_ID = re.compile(r"[0-9a-fA-F]{32}")  # --store-id: either case (section 18.3)


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def consistency_proof(m: int, leaves: list[bytes], complete: bool = True) -> list[bytes]:
    """RFC 9162 section 2.1.4.1: SUBPROOF(m, D[n], complete); PROOF(m, D[n]) is complete=True."""
    n = len(leaves)
    if m == n:
        return [] if complete else [ave.merkle_root(leaves)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return consistency_proof(m, leaves[:k], complete) + [ave.merkle_root(leaves[k:])]
    return consistency_proof(m - k, leaves[k:], False) + [ave.merkle_root(leaves[:k])]


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2, with section 22.2's rules for equal sizes and bounds."""
    if m < 1 or n < m or len(old_root) != 32 or len(new_root) != 32 or len(proof) > MAX_HASHES:
        return False
    if any(len(p) != 32 for p in proof):
        return False
    if m == n:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if m & (m - 1) == 0:
        path = [old_root] + path
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = ave.node_hash(c, fr)
            sr = ave.node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = ave.node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def read_proof(data: bytes) -> dict:
    """Parses a proof's JSON form (sections 18 and 22.3); raises ValueError(why)."""
    f = ave.Fields(data, "consistency proof", "a", PROOF_FORMAT, {"format", "storeId", "fromSeq", "toSeq", "proof"},
                   "a consistency proof holds only its store, its two seqs and its hashes")
    store = f.hex("storeId", 16)
    a, b = f.integer("fromSeq"), f.integer("toSeq")
    if not 1 <= a <= b:
        raise ValueError("consistency proof seqs must satisfy 1 ≤ fromSeq ≤ toSeq")
    items = f.obj.get("proof")
    if not isinstance(items, list) or len(items) > MAX_HASHES:
        raise ValueError(f"consistency proof field proof must be an array of at most {MAX_HASHES} hashes")
    for item in items:
        if not ave.sj.is_lower_hex(item, 32):
            raise ValueError("consistency proof field proof must hold 64 lowercase hex digits per hash")
    return {"storeId": store, "fromSeq": a, "toSeq": b, "proof": [bytes.fromhex(h) for h in items]}


def proof_file_name(store_hex: str, a: int, b: int) -> str:
    return f"{store_hex}-{a:020d}-{b:020d}{PROOF_SUFFIX}"


def anchor_files(path: str) -> list[tuple[str, bool]]:
    """(path, whether a proof file) of the anchor files at `path` (sections 16.6 and 22.3): in a
    directory, every `*.json` not starting with `.`, by name; a path that is not a directory is
    one checkpoint file."""
    if os.path.isdir(path):
        return [(os.path.join(path, name), name.endswith(PROOF_SUFFIX)) for name in sorted(os.listdir(path))
                if name.endswith(".json") and not name.startswith(".")]
    if not os.path.lexists(path):
        raise ValueError(f"no anchor at {path}; pass the directory or file checkpoints were written to")
    return [(path, False)]


def anchor_findings(dirs: list[str], store_hex: str, keys: dict[int, bytes]) -> list[tuple[str, int, int, str]]:
    """Section 22.4: (kind, first seq, last seq, message) for the store's anchored checkpoints.
    Each anchor file is read as 16.6 step 1 says: only a regular file of at most 64 KiB, opened
    without waiting. A proof file that cannot be read (a FIFO, device or directory, too large) is
    `checkpoint-invalid` naming it (step 1); a checkpoint file that cannot be read is not taken,
    as the reference's AnchorConsistency does (16.6 reports it when the store is checked)."""
    store_hex = store_hex.lower()  # 18.3: --store-id is taken in either case
    checkpoints, proofs, findings = [], {}, []
    for d in dirs:
        for path, proof in anchor_files(d):
            name = os.path.basename(path)
            if proof and not name.startswith(store_hex + "-"):
                continue
            try:
                data = ave.read_input_file(path, f"anchor file {path}", 1 << 16)
            except ave.FileProblem as e:
                if proof:  # step 1
                    findings.append(("checkpoint-invalid", 0, 0, f"anchor file {path} is not a valid consistency proof: {e}"))
                continue  # a checkpoint file: not taken; section 16.6 reports it when the store is checked
            if proof:
                try:
                    p = read_proof(data)
                    if p["storeId"] != store_hex or proof_file_name(store_hex, p["fromSeq"], p["toSeq"]) != name:
                        raise ValueError("its contents do not match its file name")
                    proofs[(p["fromSeq"], p["toSeq"])] = (path, p)
                except ValueError as e:
                    findings.append(("checkpoint-invalid", 0, 0, f"anchor file {path} is not a valid consistency proof: {e}"))
                continue
            try:
                cp = ave.read_checkpoint(data)
            except ValueError:
                continue  # section 16.6 reports it when the store is checked
            if cp["storeId"] == store_hex and ave.checkpoint_invalidity(cp, keys) is None:
                checkpoints.append((cp["seq"], path, cp))
    by_seq: list[list[tuple[int, str, dict]]] = []
    for seq, path, cp in sorted(checkpoints, key=lambda t: (t[0], t[1])):
        if by_seq and by_seq[-1][0][0] == seq:
            if not any(o["chainHead"] == cp["chainHead"] and o["merkleRoot"] == cp["merkleRoot"] for _, _, o in by_seq[-1]):
                findings.append(("checkpoint-fork", seq, seq, f"anchor files {by_seq[-1][0][1]} and {path} hold two different checkpoints at seq {seq}"))
            by_seq[-1].append((seq, path, cp))
            continue
        by_seq.append([(seq, path, cp)])
    for older, newer in zip(by_seq, by_seq[1:]):
        a, b = older[0][0], newer[0][0]
        if (a, b) not in proofs:
            continue
        path, p = proofs[(a, b)]
        if not any(verify_consistency(a, b, bytes.fromhex(x["merkleRoot"]), bytes.fromhex(y["merkleRoot"]), p["proof"])
                   for _, _, x in older for _, _, y in newer):
            findings.append(("checkpoint-fork", a, b, f"the checkpoint at seq {b} does not extend the one at seq {a} by the proof in {path}"))
    return findings


def check_vectors(path: pathlib.Path = VECTORS) -> list[str]:
    """Every proof of the vectors recomputed from the leaves, every verdict checked; the errors."""
    v = json.loads(path.read_text(encoding="utf-8"))
    errors = []
    leaves = [bytes.fromhex(h) for h in v["leaves"]]
    for i, leaf in enumerate(leaves):
        if leaf != ave.sha256(b"\x00" + b"leaf %d" % i):
            errors.append(f"leaf {i} is not LEAF('leaf {i}')")
    roots = {int(k): bytes.fromhex(h) for k, h in v["roots"].items()}
    for n in range(1, len(leaves) + 1):
        if roots.get(n) != ave.merkle_root(leaves[:n]):
            errors.append(f"root {n} differs from MTH")
    seen = set()
    for p in v["proofs"]:
        m, n, proof = p["from"], p["to"], [bytes.fromhex(h) for h in p["proof"]]
        seen.add((m, n))
        if proof != consistency_proof(m, leaves[:n]):
            errors.append(f"proof {m} -> {n} differs from PROOF(m, D[n])")
        if not verify_consistency(m, n, roots[m], roots[n], proof):
            errors.append(f"proof {m} -> {n} does not verify")
    if seen != {(m, n) for n in range(1, len(leaves) + 1) for m in range(1, n + 1)}:
        errors.append("the proofs do not cover every pair 1 ≤ m ≤ n")
    for c in v["invalid"]:
        proof = [bytes.fromhex(h) for h in c["proof"]]
        if verify_consistency(c["from"], c["to"], bytes.fromhex(c["old_root"]), bytes.fromhex(c["new_root"]), proof):
            errors.append(f"invalid case verifies: {c['why']}")
    example = read_proof(v["proof_json"].encode())
    if (example["fromSeq"], example["toSeq"]) != (6, 11) or example["proof"] != consistency_proof(6, leaves[:11]):
        errors.append("proof_json is not the proof of 6 -> 11")
    return errors


def selftest() -> list[str]:
    """The vectors, and anchors built here from the text (public TEST-ONLY seed): consistent;
    a proof file with two hashes swapped (also under the store id in upper case), one renamed to
    another pair, garbage, a FIFO or directory named *.json, and two checkpoints at one seq are
    each reported exactly; an invalid --store-id is exit 2. Returns the failures."""
    import tempfile
    failures = [f"consistency.json: {e}" for e in check_vectors()]
    store = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    keys = {1: ave.ed25519_public_key(ave.TEST_SEED)}
    leaves = [ave.sha256(b"\x00" + b"row %d" % i) for i in range(16)]

    def checkpoint(n: int, lv: list[bytes]) -> dict:
        cp = {"format": "auditdb-checkpoint v1", "storeId": store, "seq": n, "chainHead": lv[n - 1].hex(),
              "merkleRoot": ave.merkle_root(lv[:n]).hex(), "time": ave.TEST_TIME, "timeText": ave._iso(ave.TEST_TIME),
              "keyVersion": 1, "publicKey": keys[1].hex()}
        cp["signature"] = ave.ed25519_sign(ave.TEST_SEED, ave.statement(cp)).hex()
        return cp

    def proof_json(a: int, b: int, hashes: list[bytes]) -> str:
        return json.dumps({"format": PROOF_FORMAT, "storeId": store, "fromSeq": a, "toSeq": b,
                           "proof": [h.hex() for h in hashes]}, separators=(",", ":"))

    def expect(dirs, want, what):
        got = [(k, a, b) for k, a, b, _ in anchor_findings(dirs, store, keys)]
        if got != want:
            failures.append(f"anchors: {what}: got {got}, want {want}")

    with tempfile.TemporaryDirectory(prefix="auditdb-consistency-") as d:
        pub = pathlib.Path(d, "key.pub.txt")  # not *.json: not an anchor file
        pub.write_text(f"auditdb-checkpoint-pubkey v1\nkey 1 {keys[1].hex()}\n")

        def cli(sid: str) -> tuple[int, str, str]:
            import contextlib
            import io
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main([d, "--public-key", str(pub), "--store-id", sid])
            return rc, out.getvalue(), err.getvalue()
        sizes = [3, 7, 13]
        for n in sizes:
            pathlib.Path(d, f"{store}-{n:020d}.json").write_text(ave.checkpoint_json(checkpoint(n, leaves)) + "\n")
        for a, b in zip(sizes, sizes[1:]):
            pathlib.Path(d, proof_file_name(store, a, b)).write_text(proof_json(a, b, consistency_proof(a, leaves[:b])) + "\n")
        expect([d], [], "intact")
        target = pathlib.Path(d, proof_file_name(store, 7, 13))
        good = target.read_text()
        hashes = consistency_proof(7, leaves[:13])
        target.write_text(proof_json(7, 13, [hashes[1], hashes[0]] + hashes[2:]))
        expect([d], [("checkpoint-fork", 7, 13)], "swapped hashes")
        got = [(k, a, b) for k, a, b, _ in anchor_findings([d], store.upper(), keys)]
        if got != [("checkpoint-fork", 7, 13)]:  # section 18.3: the store id in either case
            failures.append(f"anchors: swapped hashes, store id in upper case: got {got}, want [('checkpoint-fork', 7, 13)]")
        swapped_cli = cli(store.upper())
        target.write_text(proof_json(3, 7, consistency_proof(3, leaves[:7])))
        expect([d], [("checkpoint-invalid", 0, 0)], "another pair's proof under this name")
        target.write_text("{")
        expect([d], [("checkpoint-invalid", 0, 0)], "not JSON")
        target.write_text(good)
        if swapped_cli[0] != 1 or not swapped_cli[1].startswith("checkpoint-fork at seqs 7...13: "):
            failures.append(f"cli: swapped hashes, --store-id in upper case: {swapped_cli}")
        # Section 16.6 step 1: an anchor file that is not a regular file (a FIFO, a directory) is
        # never waited on; as a checkpoint file it is not taken, as a proof file it is
        # checkpoint-invalid (22.4 step 1).
        pathlib.Path(d, "sub.json").mkdir()
        expect([d], [], "a directory named sub.json")
        if hasattr(os, "mkfifo"):
            os.mkfifo(os.path.join(d, "x.json"))
            fifo = os.path.join(d, proof_file_name(store, 1, 3))
            os.mkfifo(fifo)
            expect([d], [("checkpoint-invalid", 0, 0)], "a FIFO as checkpoint and as proof file, and sub.json")
            message = [m for _, _, _, m in anchor_findings([d], store, keys)][-1]
            if message != f"anchor file {fifo} is not a valid consistency proof: anchor file {fifo} is not a regular file (a FIFO, device or directory is refused)":
                failures.append(f"anchors: the FIFO's message: {message}")
        for name in ("sub.json", "x.json", proof_file_name(store, 1, 3)):
            path = pathlib.Path(d, name)
            if path.is_dir():
                path.rmdir()
            elif os.path.lexists(path):
                path.unlink()
        expect([d], [], "intact again")
        for sid, want in [(store.upper(), 0), (store, 0), ("nonsense", 2), (store[:-1], 2), (store + "0", 2), (store + "\n", 2)]:
            rc, out, err = cli(sid)
            if rc != want or (want == 2 and err != "error: --store-id must be 32 hex digits\n"):
                failures.append(f"cli --store-id {sid!r}: exit {rc}, want {want} ({out}{err})")
        with tempfile.TemporaryDirectory(prefix="auditdb-consistency-fork-") as other:
            forked = leaves[:5] + [ave.sha256(b"\x00" + b"other %d" % i) for i in range(11)]
            pathlib.Path(other, f"{store}-{7:020d}.json").write_text(ave.checkpoint_json(checkpoint(7, forked)) + "\n")
            expect([d, other], [("checkpoint-fork", 7, 7)], "two checkpoints at seq 7")
    return failures


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("anchors", nargs="*")
    ap.add_argument("--public-key")
    ap.add_argument("--store-id")
    ap.add_argument("--check-vectors", nargs="?", const=str(VECTORS))
    args = ap.parse_args(argv)
    try:
        if args.check_vectors:
            errors = check_vectors(pathlib.Path(args.check_vectors))
            for e in errors:
                print(e)
            print("consistency vectors: " + ("FAILED" if errors else "ok"))
            return 1 if errors else 0
        if not args.anchors or not args.public_key or not args.store_id:
            ap.error("give anchor directories, --public-key and --store-id")
        if not STORE_ID.fullmatch(args.store_id):
            raise ValueError("--store-id must be 32 hex digits")
        keys = ave.read_public_key_file(args.public_key)
        findings = anchor_findings(args.anchors, args.store_id.lower(), keys)
    except (OSError, ValueError) as e:
        print(f"error: {ave.sj.escaped(str(e))}", file=sys.stderr)
        return 2
    for kind, a, b, message in findings:
        print(f"{kind}" + (f" at seqs {a}...{b}" if a else "") + f": {ave.sj.escaped(message)}")
    print("consistent" if not findings else f"{len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
