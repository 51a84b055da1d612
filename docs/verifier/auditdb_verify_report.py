#!/usr/bin/env python3
"""auditdb_verify_report.py - checks a signed AuditDB compliance report (docs/FORMAT.md section 23)
with the public checkpoint key file only. Python 3 standard library; Ed25519 and the public key
file from auditdb_verify_export.py, JSON from strict_json.py (section 18).

    python3 auditdb_verify_report.py REPORT_DIR --public-key checkpoint.pub

Exit status: 0 the report verifies; 1 it does not (the reason is printed: a report file that is
missing, not a regular file, too large or unreadable makes it invalid, 23.3 step 0); 2 it could not
run (no such report directory, an unusable public key file). The reasons are word for word those of
`auditdb verify-report`.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import auditdb_verify_export as ax  # noqa: E402
import strict_json as sj  # noqa: E402

REPORT, SIGNATURE = "report.json", "report.sig"
SIGNATURE_FORMAT = "auditdb-report-signature v1"
REPORT_FORMATS = ("auditdb-report v1", "auditdb-report v2")  # 23.1: v1 has no erasures, hold placers unmasked
SIGNATURE_KEYS = {"format", "storeId", "reportSha256", "createdAt", "keyVersion", "publicKey", "signature"}
REPORT_LIMITS = sj.Limits(16 << 20, 16)


def message(store_id: bytes, report_sha256: bytes, created_at: int, key_version: int, public_key: bytes) -> bytes:
    """RPRT_MSG (23.2): 100 bytes."""
    return b"ADB1RPRT" + store_id + report_sha256 + struct.pack(">qI", created_at, key_version) + public_key


def invalidity(report: bytes, signature_doc: bytes, keys: dict[int, bytes]) -> str | None:
    """Why the report does not verify (23.3, in its order), or None."""
    try:
        sig = sj.read_object(signature_doc, sj.SIGNED_DOCUMENT)
    except sj.JSONError as e:
        return f"{SIGNATURE}: {e}"
    unknown = sorted(k for k in sig if k not in SIGNATURE_KEYS)
    if unknown:
        return f"{SIGNATURE}: the member {sj.json_quoted(unknown[0])} is not one of a report signature's"
    if sig.get("format") != SIGNATURE_FORMAT:
        return f'{SIGNATURE}: format is not "{SIGNATURE_FORMAT}"'
    sizes = {"storeId": 16, "reportSha256": 32, "publicKey": 32, "signature": 64}
    if not all(sj.is_lower_hex(sig.get(name), size) for name, size in sizes.items()):
        return f"{SIGNATURE}: storeId, reportSha256, publicKey or signature is not lowercase hex of the right length"
    created, version = sig.get("createdAt"), sig.get("keyVersion")
    if not (sj.is_integer(created) and sj.is_integer(version) and 0 <= version <= 0xFFFFFFFF):
        return f"{SIGNATURE}: createdAt or keyVersion is not an integer in range"
    if hashlib.sha256(report).hexdigest() != sig["reportSha256"]:
        return f"{REPORT} is not the report that was signed (its SHA-256 differs from reportSha256)"
    if version not in keys:
        return f"signed with checkpoint key version {version}, which the public key file does not hold"
    if keys[version] != bytes.fromhex(sig["publicKey"]):
        return f"signed with a key that is not the trusted checkpoint key version {version}"
    msg = message(bytes.fromhex(sig["storeId"]), bytes.fromhex(sig["reportSha256"]), created, version,
                  bytes.fromhex(sig["publicKey"]))
    if not ax.ed25519_verify(keys[version], msg, bytes.fromhex(sig["signature"])):
        return "the signature does not verify"
    try:
        body = sj.read_object(report, REPORT_LIMITS)
    except sj.JSONError as e:
        return f"{REPORT}: {e}"
    if body.get("format") not in REPORT_FORMATS or body.get("storeId") != sig["storeId"] or body.get("createdAt") != created \
            or not sj.is_integer(body.get("createdAt")):
        return f"{REPORT}: its format, storeId or createdAt is not the one the signature names"
    return None


def verify_dir(directory: pathlib.Path, keys: dict[int, bytes]) -> str | None:
    """Section 23.3, after the files are read: report.sig (at most 64 KiB), then report.json (at
    most 16 MiB), each a regular file (a FIFO or device is refused at once, never waited on)."""
    if not directory.is_dir():
        raise ValueError(f"no report directory at {sj.json_quoted(str(directory))}: give the directory that holds report.json and report.sig")
    try:
        signature = ax.read_bundle_file(directory, SIGNATURE, 65536)
        report = ax.read_bundle_file(directory, REPORT, 16 << 20)
    except ax.FileProblem as e:
        return str(e)
    return invalidity(report, signature, keys)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--public-key", required=True)
    args = parser.parse_args()
    try:
        if not args.directory:
            raise ValueError('no report directory at "": give the directory that holds report.json and report.sig')
        keys = ax.read_public_key_file(args.public_key)
        problem = verify_dir(pathlib.Path(args.directory), keys)
    except (OSError, ValueError) as e:
        print(f"auditdb_verify_report: {sj.escaped(str(e))}", file=sys.stderr)
        return 2
    if problem:
        print(f"REPORT INVALID: {sj.escaped(problem)}")
        return 1
    print("report valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
