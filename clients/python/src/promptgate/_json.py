"""JSON text exactly as promptgate (serde_json) writes it: floats in the shortest form that
round-trips (``0.1``, ``1.0``, ``0.00001``, ``1e-7``, ``1e+16``), strings escaped as serde_json escapes them, and the
pretty form of ``serde_json::to_string_pretty`` (two spaces, ``": "``)."""

from __future__ import annotations

import json
import math
from typing import Any, List

from ._canonical import _digits


def ryu(f: float) -> str:
    """An f64 as serde_json writes it: the shortest round-trip digits, in decimal while the
    point falls within 16 digits before or 5 after them, else with an exponent."""
    if not math.isfinite(f):
        return "null"
    if f == 0.0:
        return "-0.0" if math.copysign(1.0, f) < 0 else "0.0"
    sign = "-" if f < 0 else ""
    digits, e = _digits(f)
    length = len(digits)
    exponent = e - length + 1  # value = digits × 10^exponent
    kk = length + exponent  # where the decimal point goes
    if 0 <= exponent and kk <= 16:
        body = digits + "0" * exponent + ".0"
    elif 0 < kk <= 16:
        body = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        body = "0." + "0" * (-kk) + digits
    else:
        # serde_json writes a positive exponent with its sign: `1e+16`, `1e-7`.
        exp = f"e{'+' if kk > 1 else ''}{kk - 1}"
        body = (digits if length == 1 else f"{digits[0]}.{digits[1:]}") + exp
    return sign + body


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ryu(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    raise TypeError(f"not a JSON value: {type(v).__name__}")


def compact(v: Any) -> str:
    """``serde_json::to_string``: no whitespace, objects in the order given."""
    if isinstance(v, dict):
        return "{" + ",".join(f"{_scalar(k)}:{compact(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(compact(x) for x in v) + "]"
    return _scalar(v)


def pretty(v: Any) -> str:
    """``serde_json::to_string_pretty``."""
    out: List[str] = []
    _pretty(v, 0, out)
    return "".join(out)


def _pretty(v: Any, depth: int, out: List[str]) -> None:
    pad = "  " * (depth + 1)
    if isinstance(v, dict):
        if not v:
            out.append("{}")
            return
        out.append("{\n")
        for i, (k, x) in enumerate(v.items()):
            out.append(f"{',' + chr(10) if i else ''}{pad}{_scalar(k)}: ")
            _pretty(x, depth + 1, out)
        out.append("\n" + "  " * depth + "}")
    elif isinstance(v, (list, tuple)):
        if not v:
            out.append("[]")
            return
        out.append("[\n")
        for i, x in enumerate(v):
            out.append(f"{',' + chr(10) if i else ''}{pad}")
            _pretty(x, depth + 1, out)
        out.append("\n" + "  " * depth + "]")
    else:
        out.append(_scalar(v))


def sorted_value(v: Any) -> Any:
    """A JSON value with every object's keys sorted, as serde_json's map keeps them."""
    if isinstance(v, dict):
        return {k: sorted_value(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [sorted_value(x) for x in v]
    return v
