"""The strict JSON reading of docs/FORMAT.md section 18, written from that section alone
(Python standard library only; `json.loads` is not used: it takes the last of duplicate keys,
accepts NaN, lone surrogates and, from bytes, a byte order mark).

    read_object(data: bytes, limits: Limits) -> dict      # raises JSONError
    read_array(data: bytes, limits: Limits) -> list       # a v2 entry line (section 17.5)

Values: dict (object), list (array), str, int (an integer token: 0|-?[1-9][0-9]*, within 64
bits), float (any other number, finite; `-0` is the float -0.0), True/False, None. Use
`is_integer(v)` for an integer field: it is false for floats and for True/False.

The checks run in the order of section 18.5, and each error names the first problem and its
byte offset exactly as the reference does (the test suite compares the messages).
"""
from __future__ import annotations

import math
import unicodedata

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAXIMUM_NUMBER_LENGTH = 100


class Limits:
    def __init__(self, max_bytes: int, max_depth: int, max_values: int | None = None):
        self.max_bytes, self.max_depth, self.max_values = max_bytes, max_depth, max_values


# Section 18.4.
SIGNED_DOCUMENT = Limits(65_536, 64)                 # checkpoint.json, anchor files, statement.json
BUNDLE_ENTRY = Limits(1 << 20, 64)                   # one line of entries.jsonl
MANIFEST = Limits(24 << 20, 64, 1_000_000 + 100)     # manifest.json
DETAILS = Limits(65_536, 32)                         # an event's details
EVENT_LINE = Limits(1 << 20, 33)                     # one line of append --jsonl


class JSONError(ValueError):
    def __init__(self, problem: str, offset: int):
        super().__init__(f"invalid JSON at byte {offset}: {problem}")
        self.problem, self.offset = problem, offset


def needs_escape(cp: int) -> bool:
    """What output never prints raw (the reference's OutputEscaping.needsEscape)."""
    return (cp < 0x20 or 0x7F <= cp <= 0x9F or cp in (0x2028, 0x2029, 0x061C, 0x200E, 0x200F, 0xFEFF)
            or 0x202A <= cp <= 0x202E or 0x2066 <= cp <= 0x2069)


# Default-ignorable code points (Unicode's Default_Ignorable_Code_Point) beside the format
# characters (category Cf): they show as nothing, so output escapes them (as the reference's
# CLI does, FORMAT.md 18.5) and a name that differs by one never looks like another.
_DEFAULT_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
                      (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
                      (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
                      (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))


def invisible(cp: int) -> bool:
    """A format character or a default-ignorable code point: it renders as nothing."""
    return unicodedata.category(chr(cp)) == "Cf" or any(lo <= cp <= hi for lo, hi in _DEFAULT_IGNORABLE)


def escaped(text: str, invisible_too: bool = True) -> str:
    """`text` escaped as section 18.6 escapes a string's characters, without the quotes: `\\` as
    `\\\\`, LF, CR and tab as `\\n`, `\\r`, `\\t`, every other character output never prints raw
    (needs_escape), and every character that shows as nothing (invisible), as `\\u` and four
    lowercase hex digits (two, a surrogate pair, above U+FFFF), all else literal. The one escaping
    of the verifiers' output: every message line they print goes through it, so that text from an
    input can neither break, repaint nor disguise a line (the reference escapes its output lines
    too)."""
    out = []
    for ch in text:
        cp = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif needs_escape(cp) or 0xD800 <= cp <= 0xDFFF:  # a lone surrogate: an undecodable byte of a file name
            out.append(f"\\u{cp:04x}")
        elif invisible_too and invisible(cp):
            if cp > 0xFFFF:
                v = cp - 0x10000
                out.append(f"\\u{0xD800 + (v >> 10):04x}\\u{0xDC00 + (v & 0x3FF):04x}")
            else:
                out.append(f"\\u{cp:04x}")
        else:
            out.append(ch)
    return "".join(out)


def canonical_quoted(text: str) -> str:
    """`text` as a JSON string in the canonical form of section 18.6, as the reference writes it
    (no escape for the characters that merely show as nothing), for text compared with its."""
    return '"' + escaped(text, invisible_too=False).replace('"', '\\"') + '"'


def json_quoted(text: str) -> str:
    """`text` as a JSON string literal the way the reference quotes names in messages (18.6)."""
    return '"' + escaped(text).replace('"', '\\"') + '"'


def is_integer(v) -> bool:
    return type(v) is int


_WS = b" \t\n\r"
_DIGITS = b"0123456789"
_HEX = {ord(c): int(c, 16) for c in "0123456789abcdefABCDEF"}
_SIMPLE_ESCAPES = {ord('"'): '"', ord("\\"): "\\", ord("/"): "/", ord("b"): "\b", ord("f"): "\f",
                   ord("n"): "\n", ord("r"): "\r", ord("t"): "\t"}


class _Reader:
    def __init__(self, data: bytes, limits: Limits):
        self.b, self.limits = data, limits
        self.i, self.depth, self.values = 0, 0, 0

    def fail(self, problem: str, at: int | None = None) -> JSONError:
        return JSONError(problem, self.i if at is None else at)

    def skip_space(self):
        b, n = self.b, len(self.b)
        while self.i < n and b[self.i] in _WS:
            self.i += 1

    def count(self):
        self.values += 1
        if self.limits.max_values is not None and self.values > self.limits.max_values:
            raise self.fail(f"more than {self.limits.max_values} values")

    def top_level_object(self) -> dict:
        self.skip_space()
        if self.i >= len(self.b) or self.b[self.i] != ord("{"):
            raise self.fail("expected a JSON object ({...})")
        self.count()
        self.depth = 1
        if self.limits.max_depth < 1:
            raise self.fail(f"nested deeper than {self.limits.max_depth} levels")
        self.i += 1
        out = self.members()
        self.skip_space()
        if self.i != len(self.b):
            raise self.fail("unexpected text after the object")
        return out

    def members(self) -> dict:
        """The members of an object whose `{` was consumed, up to and including its `}`."""
        out: dict = {}
        self.skip_space()
        if self.i < len(self.b) and self.b[self.i] == ord("}"):
            self.i += 1
            return out
        while True:
            self.skip_space()
            key_start = self.i
            if self.i >= len(self.b):
                raise self.fail("unexpected end of text")
            if self.b[self.i] != ord('"'):
                raise self.fail("expected a string key")
            key = self.string()
            if key in out:
                raise self.fail(f"duplicate key {json_quoted(key)}", key_start)
            self.skip_space()
            if self.i >= len(self.b):
                raise self.fail("unexpected end of text")
            if self.b[self.i] != ord(":"):
                raise self.fail("expected ':'")
            self.i += 1
            out[key] = self.value()
            if self.end_of_container(ord("}")):
                return out

    def end_of_container(self, close: int) -> bool:
        self.skip_space()
        if self.i >= len(self.b):
            raise self.fail("unexpected end of text")
        if self.b[self.i] == ord(","):
            self.i += 1
            return False
        if self.b[self.i] != close:
            raise self.fail("expected ',' or '}'" if close == ord("}") else "expected ',' or ']'")
        self.i += 1
        return True

    def enter(self):
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise self.fail(f"nested deeper than {self.limits.max_depth} levels")
        self.i += 1

    def value(self):
        self.skip_space()
        if self.i >= len(self.b):
            raise self.fail("unexpected end of text")
        c = self.b[self.i]
        if c not in b'{["tfn-' and c not in _DIGITS:
            if self.b[self.i:self.i + 3] == b"\xef\xbb\xbf":
                raise self.fail("a byte order mark (U+FEFF); JSON here is UTF-8 without one")
            raise self.fail("expected a value")
        self.count()
        if c == ord("{"):
            self.enter()
            out = self.members()
            self.depth -= 1
            return out
        if c == ord("["):
            self.enter()
            items = []
            self.skip_space()
            if self.i < len(self.b) and self.b[self.i] == ord("]"):
                self.i += 1
            else:
                while True:
                    items.append(self.value())
                    if self.end_of_container(ord("]")):
                        break
            self.depth -= 1
            return items
        if c == ord('"'):
            return self.string()
        for word, v in ((b"true", True), (b"false", False), (b"null", None)):
            if c == word[0]:
                if self.b[self.i:self.i + len(word)] != word:
                    raise self.fail("invalid literal")
                self.i += len(word)
                return v
        return self.number()

    def number(self):
        b, n, start = self.b, len(self.b), self.i
        if b[self.i] == ord("-"):
            self.i += 1
        if self.i >= n or b[self.i] not in _DIGITS:
            raise self.fail("invalid number", start)
        leading_zero = b[self.i] == ord("0")
        self.i += 1
        while self.i < n and b[self.i] in _DIGITS:
            self.i += 1
        if leading_zero and self.i - start > (2 if b[start] == ord("-") else 1):
            raise self.fail("invalid number: leading zeros are not allowed", start)
        integer = True
        if self.i < n and b[self.i] == ord("."):
            integer = False
            self.i += 1
            if self.i >= n or b[self.i] not in _DIGITS:
                raise self.fail("invalid number", start)
            while self.i < n and b[self.i] in _DIGITS:
                self.i += 1
        if self.i < n and b[self.i] in b"eE":
            integer = False
            self.i += 1
            if self.i < n and b[self.i] in b"+-":
                self.i += 1
            if self.i >= n or b[self.i] not in _DIGITS:
                raise self.fail("invalid number", start)
            while self.i < n and b[self.i] in _DIGITS:
                self.i += 1
        if self.i - start > MAXIMUM_NUMBER_LENGTH:
            raise self.fail(f"a number longer than {MAXIMUM_NUMBER_LENGTH} bytes", start)
        text = b[start:self.i].decode("ascii")
        if integer and text != "-0":
            v = int(text)
            if not INT64_MIN <= v <= INT64_MAX:
                raise self.fail("integer outside -9223372036854775808...9223372036854775807", start)
            return v
        v = float(text)
        if not math.isfinite(v):
            raise self.fail("number outside the range of a 64-bit float", start)
        return v

    def hex4(self) -> int | None:
        if self.i + 4 > len(self.b):
            return None
        v = 0
        for k in range(4):
            d = _HEX.get(self.b[self.i + k])
            if d is None:
                return None
            v = v << 4 | d
        self.i += 4
        return v

    def string(self) -> str:
        b, n = self.b, len(self.b)
        opening = self.i
        self.i += 1
        out = bytearray()
        while True:
            if self.i >= n:
                raise self.fail("unterminated string", opening)
            c = b[self.i]
            if c == ord('"'):
                self.i += 1
                return out.decode("utf-8")  # the document was checked as UTF-8 (step 3)
            if c < 0x20:
                raise self.fail("unescaped control character in a string")
            if c != ord("\\"):
                out.append(c)
                self.i += 1
                continue
            escape = self.i
            self.i += 1
            if self.i >= n:
                raise self.fail("unterminated string", opening)
            e = b[self.i]
            self.i += 1
            if e in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[e].encode()
                continue
            if e != ord("u"):
                raise self.fail("invalid escape", escape)
            unit = self.hex4()
            if unit is None:
                raise self.fail("invalid \\u escape", escape)
            lone = f"lone surrogate \\u{unit:04X} (a \\u escape of U+D800...U+DFFF must be a high-low pair)"
            if 0xDC00 <= unit <= 0xDFFF:
                raise self.fail(lone, escape)
            if 0xD800 <= unit <= 0xDBFF:
                if not (self.i + 1 < n and b[self.i] == ord("\\") and b[self.i + 1] == ord("u")):
                    raise self.fail(lone, escape)
                self.i += 2
                low = self.hex4()
                if low is None:
                    raise self.fail("invalid \\u escape", self.i - 2)
                if not 0xDC00 <= low <= 0xDFFF:
                    raise self.fail(lone, escape)
                unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            out += chr(unit).encode("utf-8")


def _checked(data: bytes, limits: Limits) -> bytes:
    """Steps 1-3 of 18.5: the size, no byte order mark, UTF-8."""
    data = bytes(data)
    if len(data) > limits.max_bytes:
        raise JSONError(f"is {len(data)} bytes; the limit is {limits.max_bytes}", limits.max_bytes)
    if data.startswith(b"\xef\xbb\xbf"):
        raise JSONError("a byte order mark (U+FEFF); JSON here is UTF-8 without one", 0)
    try:
        data.decode("utf-8")  # strict: no overlong forms, no surrogates, nothing above U+10FFFF
    except UnicodeDecodeError as e:
        raise JSONError("invalid UTF-8", e.start)
    return data


def read_object(data: bytes, limits: Limits) -> dict:
    """Reads one JSON object by the rules of section 18 (steps 1-4 of 18.5, in that order)."""
    return _Reader(_checked(data, limits), limits).top_level_object()


def read_array(data: bytes, limits: Limits) -> list:
    """Reads one JSON array by the same rules: a line of a v2 entries.jsonl (section 17.5), the one
    document whose top-level value is not an object."""
    r = _Reader(_checked(data, limits), limits)
    r.skip_space()
    if r.i >= len(r.b) or r.b[r.i] != ord("["):
        raise r.fail("expected a JSON array ([...])")
    out = r.value()
    r.skip_space()
    if r.i != len(r.b):
        raise r.fail("unexpected text after the array")
    return out


def is_lower_hex(v, size: int) -> bool:
    """Section 18.3: a byte string of `size` bytes as 2 x size lowercase hex digits."""
    return isinstance(v, str) and len(v) == 2 * size and all(c in "0123456789abcdef" for c in v)
