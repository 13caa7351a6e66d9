"""Canonical JSON and content hashes, byte for byte as promptgate computes them.

The rules are those of ``crates/core/src/artifact/canonical.rs``: keys sorted by their UTF-8
bytes, no whitespace, only ``"`` ``\\`` and control characters escaped, integers (and floats
with no fraction below 2**53) in plain decimal, other floats in the shorter of Rust's plain
and exponent forms of the shortest round-trip digits.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

_EXACT_INT_LIMIT = 2.0**53
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _digits(f: float) -> tuple[str, int]:
    """The shortest round-trip digits of ``abs(f)`` and the decimal exponent of the first."""
    r = repr(abs(f))
    mantissa, _, exp = r.partition("e")
    whole, _, frac = mantissa.partition(".")
    written = whole + frac
    significant = written.lstrip("0")
    # The decimal point sits after `point` digits of `written`; its leading zeros go.
    point = len(whole) + (int(exp) if exp else 0)
    lead = len(written) - len(significant)
    return significant.rstrip("0") or "0", point - lead - 1


def _float(f: float) -> str:
    if not math.isfinite(f):
        raise ValueError(f"non-finite number {f} cannot be hashed")
    if f == int(f) and abs(f) < _EXACT_INT_LIMIT:
        return str(int(f))
    sign = "-" if f < 0 else ""
    digits, e = _digits(f)
    # Rust's `{}`: plain decimal, never an exponent.
    if e >= 0:
        if len(digits) <= e + 1:
            plain = digits + "0" * (e + 1 - len(digits))
        else:
            plain = digits[: e + 1] + "." + digits[e + 1 :]
    else:
        plain = "0." + "0" * (-e - 1) + digits
    # Rust's `{:e}`: d.ddde<exp>, no `+`, no padding.
    exp = digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + f"e{e}"
    return sign + (exp if len(exp) < len(plain) else plain)


def _string(s: str, out: list[str]) -> None:
    out.append('"')
    for c in s:
        esc = _ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')


def _value(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        out.append(_float(v))
    elif isinstance(v, str):
        _string(v, out)
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _value(item, out)
        out.append("]")
    elif isinstance(v, dict):
        out.append("{")
        for i, key in enumerate(sorted(v, key=lambda k: k.encode("utf-8"))):
            if i:
                out.append(",")
            _string(key, out)
            out.append(":")
            _value(v[key], out)
        out.append("}")
    else:
        raise TypeError(f"not a JSON value: {type(v).__name__}")


def canonical_json(value: Any) -> str:
    """The canonical JSON text of a JSON value (as parsed by :mod:`json`)."""
    out: list[str] = []
    _value(value, out)
    return "".join(out)


def content_hash(value: Any) -> str:
    """Lowercase hex SHA-256 of the canonical JSON: a version's identity."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
