#!/usr/bin/env python3
"""masking.py - the two masking methods of docs/masking.md, written from its text, standard library
only: an independent check of the reference's partial masks and hash tokens.

    python3 docs/verifier/masking.py --selftest

A masked rendering in an export (docs/FORMAT.md section 17.6) is not proven, so a verifier never
needs these; they let a reader who holds the masking key recompute a token (to join on it) and
check that the reference masks as documented.
"""

from __future__ import annotations

import hashlib
import hmac
import sys


def masking_key(key: bytes) -> bytes:
    """K_mask = HMAC-SHA256(K, "ADB1MASK"), K the newest key of the masking key file."""
    return hmac.new(key, b"ADB1MASK", hashlib.sha256).digest()


def hash_token(k_mask: bytes, value: bytes) -> str:
    """hmac: and the first 16 bytes of HMAC-SHA256(K_mask, value) in lowercase hex."""
    return "hmac:" + hmac.new(k_mask, value, hashlib.sha256).digest()[:16].hex()


def partial(text: str) -> str:
    """By Unicode scalars (Python code points): an e-mail address (a last @ with text on both
    sides) keeps its first scalar and the domain; other text of 5 or more keeps the first and
    last; anything shorter is ***."""
    at = text.rfind("@")
    if 0 < at < len(text) - 1:
        return text[0] + "***@" + text[at + 1:]
    return text[0] + "***" + text[-1] if len(text) >= 5 else "***"


def selftest() -> list[str]:
    failures = []

    def check(ok, what):
        print(("  ok   " if ok else "  FAIL ") + what)
        if not ok:
            failures.append(what)

    k = masking_key(bytes(range(32)))
    for value, token in [(b"jane.doe@example.com", "hmac:7e37ef03a28daee59ac65f2ee012ac58"),
                         (b"user-1", "hmac:3801c99dc5cd6f7ff3d0833a1d30ece6"), (b"42", "hmac:4ce6cfc53ad929369b63029640b058a7")]:
        check(hash_token(k, value) == token, f"hash token of {value.decode()} (docs/masking.md test vector)")
    # The cases MaskingTests checks against the reference.
    for text, shown in [("jane.doe@example.com", "j***@example.com"), ("a@b", "a***@b"), ("x@y@corp.example", "x***@corp.example"),
                        ("alice", "a***e"), ("bob", "***"), ("", "***"), ("@host", "@***t"), ("user@", "u***@"), ("Zoë Ünal", "Z***l")]:
        check(partial(text) == shown, f"partial mask of {text!r} is {shown!r}")
    return failures


if __name__ == "__main__":
    if sys.argv[1:] != ["--selftest"]:
        print(__doc__)
        sys.exit(2)
    sys.exit(1 if selftest() else 0)
