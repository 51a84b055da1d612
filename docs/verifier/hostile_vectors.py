#!/usr/bin/env python3
"""Hostile test vectors (docs/test-vectors/hostile.json): JSON documents and export bundles that
a conforming implementation of docs/FORMAT.md must read exactly as listed (section 14).

    python3 hostile_vectors.py --emit        # regenerates docs/test-vectors/hostile.json
    python3 hostile_vectors.py --selftest    # checks the file is current and this verifier agrees

Every expectation below is written by hand: for JSON documents the exact error (or acceptance),
for bundles the verdict and the kind and seq of every finding. The generator checks that the
independent Python verifier reaches exactly those, and stores its messages too; the Swift test
suite (Tests/AuditDBTests/Format/HostileVectorTests.swift) checks that the engine reaches the
same verdicts, findings and messages.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import auditdb_verify_export as ax  # noqa: E402
import strict_json as sj  # noqa: E402

VECTORS = HERE.parent / "test-vectors"
OUT = VECTORS / "hostile.json"
BUNDLE = VECTORS / "bundle"
BUNDLE_V2 = VECTORS / "bundle-v2"

# ------------------------------------------------------------------------------------------
# JSON documents (section 18): (name, limits, input bytes, expected error or None)
# ------------------------------------------------------------------------------------------

SIGNED = {"max_bytes": 65536, "max_depth": 64, "max_values": None}
DETAILS = {"max_bytes": 65536, "max_depth": 32, "max_values": None}
TINY = {"max_bytes": 16, "max_depth": 64, "max_values": 3}


def E(offset: int, problem: str) -> str:
    return f"invalid JSON at byte {offset}: {problem}"


LONE = "(a \\u escape of U+D800...U+DFFF must be a high-low pair)"
JSON_CASES = [
    ("a plain object", SIGNED, b'{"a":1}', None),
    ("whitespace of all four kinds around tokens", SIGNED, b' \t\r\n{ "a" : [ 1 , 2 ] }\n', None),
    ("a byte order mark", SIGNED, b'\xef\xbb\xbf{"a":1}',
     E(0, "a byte order mark (U+FEFF); JSON here is UTF-8 without one")),
    ("a byte order mark before a value", SIGNED, b'{"a":\xef\xbb\xbf1}', E(5, "a byte order mark (U+FEFF); JSON here is UTF-8 without one")),
    ("a byte order mark inside a string is a character", SIGNED, b'{"a":"\xef\xbb\xbf"}', None),
    ("invalid UTF-8: a lone continuation byte", SIGNED, b'{"a":"\xff"}', E(6, "invalid UTF-8")),
    ("invalid UTF-8: an encoded surrogate (CESU-8)", SIGNED, b'{"a":"\xed\xa0\x80"}', E(6, "invalid UTF-8")),
    ("invalid UTF-8: an overlong slash", SIGNED, b'{"a":"\xc0\xaf"}', E(6, "invalid UTF-8")),
    ("invalid UTF-8: above U+10FFFF", SIGNED, b'{"a":"\xf4\x90\x80\x80"}', E(6, "invalid UTF-8")),
    ("invalid UTF-8: a truncated sequence at the end", SIGNED, b'{"a":1}\xe2\x82', E(7, "invalid UTF-8")),
    ("invalid UTF-8 outside a string is still invalid UTF-8 first", SIGNED, b'{"a":1,\xff}', E(7, "invalid UTF-8")),
    ("a duplicate key", SIGNED, b'{"a":1,"a":2}', E(7, 'duplicate key "a"')),
    ("a duplicate key spelled with an escape", SIGNED, b'{"a":1,"\\u0061":2}', E(7, 'duplicate key "a"')),
    ("a duplicate key in a nested object", SIGNED, b'{"o":{"k":1,"k":1}}', E(12, 'duplicate key "k"')),
    ("K and the Kelvin sign are two keys (no normalisation)", SIGNED, b'{"K":1,"\\u212a":2}', None),
    ("NFC and NFD spellings are two keys (no normalisation)", SIGNED, '{"é":1,"e\u0301":2}'.encode(), None),
    ("a lone high surrogate", SIGNED, b'{"a":"\\ud800"}', E(6, "lone surrogate \\uD800 " + LONE)),
    ("a lone low surrogate", SIGNED, b'{"a":"x\\uDC00"}', E(7, "lone surrogate \\uDC00 " + LONE)),
    ("a high surrogate before a non-surrogate escape", SIGNED, b'{"a":"\\ud83d\\u0041"}',
     E(6, "lone surrogate \\uD83D " + LONE)),
    ("a surrogate pair", SIGNED, b'{"a":"\\ud83d\\ude00"}', None),
    ("a raw control character in a string", SIGNED, b'{"a":"\x01"}', E(6, "unescaped control character in a string")),
    ("an unknown escape", SIGNED, b'{"a":"\\q"}', E(6, "invalid escape")),
    ("a short \\u escape", SIGNED, b'{"a":"\\u12"}', E(6, "invalid \\u escape")),
    ("an unterminated string", SIGNED, b'{"a":"x', E(5, "unterminated string")),
    ("1.0 is a number (refused only where an integer is required)", SIGNED, b'{"a":1.0}', None),
    ("-0 is a number (refused only where an integer is required)", SIGNED, b'{"a":-0}', None),
    ("a leading zero", SIGNED, b'{"a":01}', E(5, "invalid number: leading zeros are not allowed")),
    ("a minus without digits", SIGNED, b'{"a":-}', E(5, "invalid number")),
    ("a fraction without digits", SIGNED, b'{"a":1.}', E(5, "invalid number")),
    ("an exponent without digits", SIGNED, b'{"a":1e+}', E(5, "invalid number")),
    ("the largest integer", SIGNED, b'{"a":9223372036854775807}', None),
    ("the smallest integer", SIGNED, b'{"a":-9223372036854775808}', None),
    ("an integer above 64 bits", SIGNED, b'{"a":9223372036854775808}',
     E(5, "integer outside -9223372036854775808...9223372036854775807")),
    ("an integer below 64 bits", SIGNED, b'{"a":-9223372036854775809}',
     E(5, "integer outside -9223372036854775808...9223372036854775807")),
    ("a number that is infinite as a 64-bit float", SIGNED, b'{"a":1e999}', E(5, "number outside the range of a 64-bit float")),
    ("a number that underflows to zero is finite", SIGNED, b'{"a":1e-999}', None),
    ("a number of 101 bytes", SIGNED, b'{"a":1.' + b"0" * 99 + b"}", E(5, "a number longer than 100 bytes")),
    ("a number of 100 bytes", SIGNED, b'{"a":1.' + b"0" * 98 + b"}", None),
    ("NaN is not JSON", SIGNED, b'{"a":NaN}', E(5, "expected a value")),
    ("a bad literal", SIGNED, b'{"a":tru}', E(5, "invalid literal")),
    ("a trailing comma in an object", SIGNED, b'{"a":1,}', E(7, "expected a string key")),
    ("a trailing comma in an array", SIGNED, b'{"a":[1,]}', E(8, "expected a value")),
    ("a missing colon", SIGNED, b'{"a" 1}', E(5, "expected ':'")),
    ("a missing comma in an array", SIGNED, b'{"a":[1 2]}', E(8, "expected ',' or ']'")),
    ("a missing comma in an object", SIGNED, b'{"a":1 "b":2}', E(7, "expected ',' or '}'")),
    ("a top-level array", SIGNED, b'[1]', E(0, "expected a JSON object ({...})")),
    ("an empty document", SIGNED, b'', E(0, "expected a JSON object ({...})")),
    ("text after the object", SIGNED, b'{"a":1} x', E(8, "unexpected text after the object")),
    ("a second object", SIGNED, b'{"a":1}{"b":2}', E(7, "unexpected text after the object")),
    ("an unterminated object", SIGNED, b'{"a":1', E(6, "unexpected end of text")),
    ("64 levels", SIGNED, b'{"a":' + b"[" * 63 + b"]" * 63 + b"}", None),
    ("65 levels", SIGNED, b'{"a":' + b"[" * 64 + b"]" * 64 + b"}", E(68, "nested deeper than 64 levels")),
    ("details: 33 levels", DETAILS, b'{"a":' * 33 + b"1" + b"}" * 33, E(160, "nested deeper than 32 levels")),
    ("more values than the limit", TINY, b'{"a":[1,2]}', E(8, "more than 3 values")),
    ("more bytes than the limit", TINY, b'{"a":"0123456789"}', E(16, "is 18 bytes; the limit is 16")),
]

# ------------------------------------------------------------------------------------------
# Bundles (sections 17.2, 17.4): edits of the vector bundle, with hand-written verdicts
# ------------------------------------------------------------------------------------------


def base(name: str) -> bytes:
    return (BUNDLE / name).read_bytes()


def replaced(name: str, old: bytes, new: bytes, count: int = 1) -> bytes:
    data = base(name)
    assert data.count(old) >= count, (name, old)
    return data.replace(old, new, count)


ENTRY2 = b'{"seq":2,'
DEEP = b'"x":' + b"[" * 64 + b"]" * 64 + b","
UPPER_LEAF = b"B49F2C4E67EC979F7A92B219BE7207E746E66E3CD25DE4988C17038CB5E2E777"
PUBLIC_KELVIN = '"public\u212aey":'.encode()

# (name, file, content (bytes, None to remove the file, or a repeat spec), require_statement, [(kind, seq), ...])
BUNDLE_CASES = [
    ("entries: a duplicate key (tenant given twice: a first-wins reader would see evil)", "entries.jsonl",
     replaced("entries.jsonl", ENTRY2, ENTRY2 + b'"tenant":"evil",'), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("entries: a byte order mark", "entries.jsonl", b"\xef\xbb\xbf" + base("entries.jsonl"), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("entries: a lone surrogate in a value", "entries.jsonl",
     replaced("entries.jsonl", b'"tenant":"acme-eu"', b'"tenant":"\\ud800"'), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("entries: invalid UTF-8 in a value", "entries.jsonl",
     replaced("entries.jsonl", b'"tenant":"acme-eu"', b'"tenant":"acme\xff"'), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("entries: seq 2.0 is not an integer", "entries.jsonl", replaced("entries.jsonl", ENTRY2, b'{"seq":2.0,'), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("entries: seq true is not an integer", "entries.jsonl", replaced("entries.jsonl", ENTRY2, b'{"seq":true,'), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("entries: outcome 2.0 is not an integer", "entries.jsonl",
     replaced("entries.jsonl", b'"outcome":2,', b'"outcome":2.0,'), False, [("bundle-malformed", 2)]),
    ("entries: originRef -0 is not an integer", "entries.jsonl",
     replaced("entries.jsonl", b'"originRef":null,', b'"originRef":-0,'), False, [("bundle-malformed", 2)]),
    ("entries: occurredAt missing (null must be written)", "entries.jsonl",
     replaced("entries.jsonl", b'"occurredAt":1795439701999999,', b''), False, [("bundle-malformed", 2)]),
    ("entries: an integer above 64 bits", "entries.jsonl",
     replaced("entries.jsonl", b'"recordedAt":1795439703000001', b'"recordedAt":99999999999999999999'), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("entries: an infinite number", "entries.jsonl",
     replaced("entries.jsonl", b'"recordedAt":1795439703000001', b'"recordedAt":1e999'), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("entries: nested 65 levels", "entries.jsonl", replaced("entries.jsonl", ENTRY2, ENTRY2 + DEEP), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("entries: an upper-case leafHash", "entries.jsonl", replaced("entries.jsonl", UPPER_LEAF.lower(), UPPER_LEAF), False,
     [("entry-changed", 2)]),
    ("entries: an upper-case commitment", "entries.jsonl",
     replaced("entries.jsonl", b'"commitment":"0d7a19b1', b'"commitment":"0D7A19B1'), False, [("bundle-malformed", 2)]),
    ("entries: an upper-case proof hash", "entries.jsonl",
     replaced("entries.jsonl", b'"proof":["1410bfa4', b'"proof":["1410BFA4'), False, [("proof-invalid", 2)]),
    ("entries: CRLF line ends (CR is JSON whitespace)", "entries.jsonl",
     base("entries.jsonl").replace(b"\n", b"\r\n"), False, []),
    ("entries: empty lines are skipped", "entries.jsonl", b"\n\n" + base("entries.jsonl").replace(b"\n", b"\n\n"), False, []),
    ("entries: a line of spaces is not JSON", "entries.jsonl",
     base("entries.jsonl").replace(b"\n", b"\n   \n", 1), False, [("bundle-malformed", None)]),
    ("entries: no final LF", "entries.jsonl", base("entries.jsonl").rstrip(b"\n"), False, []),
    ("entries.jsonl missing", "entries.jsonl", None, False, [("bundle-malformed", None)]),
    ("entries: a line longer than 1 MiB stops verification", "entries.jsonl",
     {"prefix_hex": "", "unit_hex": "20", "count": (1 << 20) + 1, "suffix_hex": "0a"}, False, [("bundle-malformed", None)]),
    ("entries: more than 1,000,000 lines stops verification", "entries.jsonl",
     {"prefix_hex": "", "unit_hex": "0a", "count": 1_000_001, "suffix_hex": ""}, False, [("bundle-malformed", None)]),
    ("manifest: a duplicate key", "manifest.json",
     replaced("manifest.json", b'"seqs":[2,4],', b'"seqs":[2,4],"seqs":[2],'), False, [("bundle-malformed", None)]),
    ("manifest: seqs in reverse order", "manifest.json", replaced("manifest.json", b'"seqs":[2,4]', b'"seqs":[4,2]'), False,
     [("bundle-malformed", None)]),
    ("manifest: a seq listed twice", "manifest.json",
     replaced("manifest.json", b'"entryCount":2,"seqs":[2,4]', b'"entryCount":3,"seqs":[2,2,4]'), False,
     [("bundle-malformed", None)]),
    ("manifest: entryCount 2.0 is not an integer", "manifest.json",
     replaced("manifest.json", b'"entryCount":2,', b'"entryCount":2.0,'), False, [("bundle-malformed", None)]),
    ("manifest: a byte order mark", "manifest.json", b"\xef\xbb\xbf" + base("manifest.json"), False,
     [("bundle-malformed", None)]),
    ("manifest: an upper-case storeId is another store id", "manifest.json",
     replaced("manifest.json", b'"storeId":"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"', b'"storeId":"A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"'),
     False, [("manifest-mismatch", None)]),
    ("manifest: createdAt as a float", "manifest.json",
     replaced("manifest.json", b'"createdAt":1795439710000000', b'"createdAt":1.79543971e15'), False,
     [("statement-mismatch", None)]),
    ("checkpoint: a duplicate key", "checkpoint.json", replaced("checkpoint.json", b'"seq":4,', b'"seq":4,"seq":3,'), False,
     [("checkpoint-invalid", None)]),
    ("checkpoint: an upper-case storeId", "checkpoint.json",
     replaced("checkpoint.json", b'"storeId":"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"', b'"storeId":"A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"'),
     False, [("checkpoint-invalid", None)]),
    ("checkpoint: seq 4.0 is not an integer", "checkpoint.json", replaced("checkpoint.json", b'"seq":4,', b'"seq":4.0,'), False,
     [("checkpoint-invalid", None)]),
    ("checkpoint: time written with an exponent", "checkpoint.json",
     replaced("checkpoint.json", b'"time":1795439710000000', b'"time":1.79543971e15'), False, [("checkpoint-invalid", None)]),
    ("checkpoint: a byte order mark", "checkpoint.json", b"\xef\xbb\xbf" + base("checkpoint.json"), False,
     [("checkpoint-invalid", None)]),
    ("statement: entryCount 2.0 is not an integer", "statement.json",
     replaced("statement.json", b'"entryCount":2,', b'"entryCount":2.0,'), False, [("statement-invalid", None)]),
    ("statement: a duplicate key", "statement.json",
     replaced("statement.json", b'"entryCount":2,', b'"entryCount":2,"entryCount":1,'), False, [("statement-invalid", None)]),
    ("statement: publicKey spelled with a Kelvin sign is an unknown key", "statement.json",
     replaced("statement.json", b'"publicKey":', PUBLIC_KELVIN), False, [("statement-invalid", None)]),
    ("statement missing, one required", "statement.json", None, True, [("statement-missing", None)]),
]


# ------------------------------------------------------------------------------------------
# Format v2 (section 17.5): edits of bundle-v2/, with hand-written verdicts
# ------------------------------------------------------------------------------------------


def base_v2(name: str) -> bytes:
    return (BUNDLE_V2 / name).read_bytes()


def replaced_v2(name: str, old: bytes, new: bytes) -> bytes:
    data = base_v2(name)
    assert data.count(old) >= 1, (name, old)
    return data.replace(old, new, 1)


V2_LINES = base_v2("entries.jsonl").split(b"\n")[:2]
V2_PROOF = base_v2("multiproof.bin")
ACTOR_COMMITMENT_2 = b"3b429fa028ed5ffbadf72245d2fba377f4ec216f58b2a2a6e32cd805c39dbd2d"  # bundle/entries.jsonl, seq 2


def v2_lines(*lines: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def checkpoint_at_3() -> bytes:
    """A genuine checkpoint of the first 3 vector rows, signed with the public test-only seed."""
    rows = json.loads((VECTORS / "vectors.json").read_text(encoding="utf-8"))["rows"][:3]
    leaves = [ax.leaf_hash(bytes.fromhex(r["enc_row"])) for r in rows]
    cp = json.loads(base_v2("checkpoint.json"))
    cp.update(seq=3, chainHead=rows[-1]["mac"], merkleRoot=ax.merkle_root(leaves).hex())
    cp["signature"] = ax.ed25519_sign(ax.TEST_SEED, ax.statement(cp)).hex()
    return (ax.checkpoint_json(cp) + "\n").encode()


# (name, file, content, require_statement, [(kind, seq), ...]), each starting from bundle-v2/.
BUNDLE_V2_CASES = [
    ("v2: a changed value (action)", "entries.jsonl", replaced_v2("entries.jsonl", b'"document.delete"', b'"document.read"'),
     False, [("proof-invalid", None)]),
    ("v2: a changed shown actor", "entries.jsonl", replaced_v2("entries.jsonl", "Zoë".encode(), b"Zoe"), False,
     [("proof-invalid", None)]),
    ("v2: a changed nonce", "entries.jsonl", replaced_v2("entries.jsonl", b'"05f8b882', b'"15f8b882'), False,
     [("proof-invalid", None)]),
    ("v2: a changed commitment of a withheld field", "entries.jsonl",
     replaced_v2("entries.jsonl", b'{"withheld":"0d7a19b1', b'{"withheld":"1d7a19b1'), False, [("proof-invalid", None)]),
    ("v2: an entry removed", "entries.jsonl", v2_lines(V2_LINES[1]), False, [("entry-missing", 2)]),
    ("v2: an entry added (seq 3, not listed)", "entries.jsonl",
     v2_lines(V2_LINES[0], V2_LINES[1].replace(b"[4,", b"[3,", 1), V2_LINES[1]), False, [("entry-added", 3)]),
    ("v2: entries reordered", "entries.jsonl", v2_lines(V2_LINES[1], V2_LINES[0]), False, [("entry-out-of-order", 2)]),
    ("v2: an entry repeated", "entries.jsonl", v2_lines(V2_LINES[0], V2_LINES[0], V2_LINES[1]), False,
     [("entry-duplicate", 2)]),
    ("v2: CRLF line ends verify", "entries.jsonl", v2_lines(V2_LINES[0] + b"\r", V2_LINES[1] + b"\r"), False, []),
    ("v2: a multiproof hash changed", "multiproof.bin", bytes([V2_PROOF[0] ^ 1]) + V2_PROOF[1:], False,
     [("proof-invalid", None)]),
    ("v2: the multiproof hashes swapped", "multiproof.bin", V2_PROOF[32:] + V2_PROOF[:32], False,
     [("proof-invalid", None)]),
    ("v2: a multiproof hash missing", "multiproof.bin", V2_PROOF[:32], False, [("proof-invalid", None)]),
    ("v2: a multiproof hash repeated (one too many)", "multiproof.bin", V2_PROOF + V2_PROOF[:32], False,
     [("proof-invalid", None)]),
    ("v2: a multiproof of 63 bytes", "multiproof.bin", V2_PROOF[:63], False, [("proof-invalid", None)]),
    ("v2: an empty multiproof", "multiproof.bin", b"", False, [("proof-invalid", None)]),
    ("v2: multiproof.bin missing", "multiproof.bin", None, False, [("bundle-malformed", None)]),
    ("v2: an entry with 18 elements", "entries.jsonl", replaced_v2("entries.jsonl", b"[2,1,1,", b"[2,1,1,1,"), False,
     [("bundle-malformed", 2)]),
    ("v2: outcome 2.0 is not an integer", "entries.jsonl",
     replaced_v2("entries.jsonl", b',2,2,"req-7f3a9c"', b',2.0,2,"req-7f3a9c"'), False, [("bundle-malformed", 2)]),
    ("v2: an upper-case nonce", "entries.jsonl", replaced_v2("entries.jsonl", b'"05f8b882c171016e', b'"05F8B882C171016E'),
     False, [("bundle-malformed", 2)]),
    ("v2: a withheld field with a second key", "entries.jsonl",
     replaced_v2("entries.jsonl", b'{"withheld":"0d7a19b1', b'{"value":"x","withheld":"0d7a19b1'), False,
     [("bundle-malformed", 2)]),
    ("v2: a shown field without its nonce", "entries.jsonl",
     replaced_v2("entries.jsonl", b'["web 10.0.0.8","dae7de6ef8151368e9abe8f35308ce04652736b2bac5ca0742d3ff906d3568bf"]',
                 b'["web 10.0.0.8"]'), False, [("bundle-malformed", 2)]),
    ("v2: one more field withheld after signing", "entries.jsonl",
     replaced_v2("entries.jsonl",
                 '["Zoë Ångström <zoe@example.com>","05f8b882c171016e155fa5851f626b8cc0c9fa3af8c1961e06d82d5e620c5d11"]'.encode(),
                 b'{"withheld":"' + ACTOR_COMMITMENT_2 + b'"}'), False, [("statement-mismatch", 2)]),
    ("v2: a withheld field relabelled erased still verifies (neither is proven: both show only the commitment)",
     "entries.jsonl", replaced_v2("entries.jsonl", b'{"withheld":"0d7a19b1', b'{"erased":"0d7a19b1'), False, []),
    ("v2: a v1 entry (an object) in a v2 bundle", "entries.jsonl",
     v2_lines(base("entries.jsonl").split(b"\n")[0], V2_LINES[1]), False, [("bundle-malformed", None), ("entry-missing", 2)]),
    ("v2: a seq that is not an integer", "entries.jsonl", replaced_v2("entries.jsonl", b"[2,", b'["2",'), False,
     [("bundle-malformed", None), ("entry-missing", 2)]),
    ("v2: the manifest says v1", "manifest.json", replaced_v2("manifest.json", b"auditdb-export v2", b"auditdb-export v1"),
     False, [("bundle-malformed", None), ("bundle-malformed", None), ("entry-missing", 2), ("entry-missing", 4)]),
    ("v2: another genuine checkpoint (seq 3)", "checkpoint.json", checkpoint_at_3(), False,
     [("manifest-mismatch", None), ("statement-mismatch", None), ("proof-invalid", 4)]),
]


def content_field(content) -> dict:
    if content is None:
        return {"remove": True}
    if isinstance(content, dict):
        return {"repeat": content}
    return {"content_hex": content.hex()}


def materialize(case: dict) -> bytes | None:
    """The bytes a case puts in its file (None: the file is removed)."""
    if case.get("remove"):
        return None
    if "repeat" in case:
        r = case["repeat"]
        return bytes.fromhex(r["prefix_hex"]) + bytes.fromhex(r["unit_hex"]) * r["count"] + bytes.fromhex(r["suffix_hex"])
    return bytes.fromhex(case["content_hex"])


def run_bundle_case(case: dict, keys: dict, work: pathlib.Path) -> list:
    b = work / "bundle"
    if b.exists():
        shutil.rmtree(b)
    shutil.copytree(VECTORS / case.get("base", "bundle"), b)
    data = materialize(case)
    if data is None:
        (b / case["file"]).unlink()
    else:
        (b / case["file"]).write_bytes(data)
    findings, _ = ax.verify_bundle(b, keys, require_statement=case["require_statement"])
    return [[k, s, m] for k, s, m in findings]


def build() -> tuple[dict, list[str]]:
    """The vectors, and every disagreement between this verifier and the hand-written expectations."""
    problems = []
    json_out = []
    for name, limits, data, expected in JSON_CASES:
        try:
            sj.read_object(data, sj.Limits(limits["max_bytes"], limits["max_depth"], limits["max_values"]))
            got = None
        except sj.JSONError as e:
            got = str(e)
        if got != expected:
            problems.append(f"json {name!r}: expected {expected!r}, got {got!r}")
        json_out.append({"name": name, "limits": limits, "input_hex": data.hex(), "error": expected})
    keys = ax.read_public_key_file(VECTORS / "checkpoint.pub")
    bundles_out = []
    with tempfile.TemporaryDirectory() as d:
        for name, file, content, require, expected in BUNDLE_CASES:
            case = {"name": name, "file": file, **content_field(content), "require_statement": require}
            findings = run_bundle_case(case, keys, pathlib.Path(d))
            got = [(k, s) for k, s, _ in findings]
            if got != expected:
                problems.append(f"bundle {name!r}: expected {expected}, got {findings}")
            case.update(valid=not findings, findings=findings)
            bundles_out.append(case)
        for name, file, content, require, expected in BUNDLE_V2_CASES:
            case = {"name": name, "base": "bundle-v2", "file": file, **content_field(content), "require_statement": require}
            findings = run_bundle_case(case, keys, pathlib.Path(d))
            got = [(k, s) for k, s, _ in findings]
            if got != expected:
                problems.append(f"bundle {name!r}: expected {expected}, got {findings}")
            case.update(valid=not findings, findings=findings)
            bundles_out.append(case)
    vectors = {
        "vectors_format": "auditdb-hostile-vectors", "vectors_version": 1,
        "generator": "docs/verifier/hostile_vectors.py --emit",
        "json": json_out,
        "bundles_base": "docs/test-vectors/bundle (verified under checkpoint.pub)",
        "bundles": bundles_out,
    }
    return vectors, problems


def emit() -> int:
    vectors, problems = build()
    for p in problems:
        print("DISAGREES:", p, file=sys.stderr)
    OUT.write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if problems else 0


def selftest() -> list[str]:
    failures = []

    def check(ok, what):
        print(("  ok   " if ok else "  FAIL ") + what)
        if not ok:
            failures.append(what)
    vectors, problems = build()
    for p in problems:
        check(False, p)
    check(not problems, f"the Python verifier reaches every hand-written verdict ({len(JSON_CASES)} JSON documents, "
          f"{len(BUNDLE_CASES) + len(BUNDLE_V2_CASES)} bundles)")
    stored = json.loads(OUT.read_text(encoding="utf-8"))
    check(stored == json.loads(json.dumps(vectors, ensure_ascii=False)), "hostile.json is current (--emit)")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Hostile test vectors of docs/FORMAT.md")
    parser.add_argument("--emit", action="store_true")
    parser.add_argument("--selftest", action="store_true")
    args = parser.parse_args(argv)
    if args.emit:
        return emit()
    return 1 if selftest() else 0


if __name__ == "__main__":
    sys.exit(main())
