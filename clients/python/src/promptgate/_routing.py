"""Sticky canary routing, exactly as the server assigns it (``crates/registry/src/target.rs``).

A routing key hashes with the label (SHA-256 of ``label NUL key``, the first 8 bytes big-endian,
mod 10,000) to a bucket; the versions of a split take consecutive ranges of buckets, newest
first, so growing a canary only moves keys onto it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Dict, List, Optional, Tuple, Union

BUCKETS = 10_000

#: A label's target: one version id, or a split as (version id, percent) pairs, newest first.
Target = Union[str, List[Tuple[str, int]]]


def _number(version_id: str) -> int:
    m = re.match(r"v(\d+)", version_id)
    return int(m.group(1)) if m else 0


def split(weights: Dict[str, int]) -> Target:
    """A split from the server's JSON (``{version_id: percent}``), in its canonical order."""
    parts = sorted(weights.items(), key=lambda p: (_number(p[0]), p[0]), reverse=True)
    if len(parts) == 1:
        return parts[0][0]
    return [(v, int(w)) for v, w in parts]


def bucket(label: str, key: str) -> int:
    digest = hashlib.sha256(label.encode("utf-8") + b"\0" + key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def primary(target: Target) -> str:
    """What a caller without a routing key gets: the largest weight, the oldest on a tie."""
    if isinstance(target, str):
        return target
    best = target[0]
    for part in target[1:]:
        if part[1] >= best[1]:
            best = part
    return best[0]


def assign(target: Target, label: str, routing_key: Optional[str]) -> str:
    """The version ``routing_key`` is served under ``label``."""
    if isinstance(target, str):
        return target
    if routing_key is None:
        return primary(target)
    b = bucket(label, routing_key)
    upper = 0
    for version, weight in target:
        upper += weight * (BUCKETS // 100)
        if b < upper:
            return version
    return target[-1][0]


def versions(target: Target) -> List[str]:
    return [target] if isinstance(target, str) else [v for v, _ in target]
