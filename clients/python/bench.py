"""`get` on a cache hit (`python clients/python/bench.py`): no network call, one dict lookup.

Starts nothing: the client is filled from a bundle written by the promptgate binary
(`PROMPTGATE_BIN`, default `target/release/promptgate` then `target/debug/promptgate`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "src"))
from promptgate import Client  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def binary() -> str:
    env = os.environ.get("PROMPTGATE_BIN")
    if env:
        return env
    for kind in ("release", "debug"):
        p = ROOT / "target" / kind / "promptgate"
        if p.exists():
            return str(p)
    raise SystemExit("build promptgate first (cargo build)")


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "bundle.json"
        subprocess.run(
            [binary(), "-C", str(ROOT / "examples" / "support"), "bundle", "--out", str(out)],
            check=True,
            capture_output=True,
        )
        c = Client.from_bundle(str(out))
    c.get("support_agent", "production")
    # The same label as a 10 % canary (routing hashes the key on every call).
    from promptgate._client import _LabelState

    state = c._entries[("support_agent", "production")]
    (vid, prompt), = state.versions.items()
    c._entries[("support_agent", "canary")] = _LabelState(
        [("v9-0000000", 10), (vid, 90)], None, {vid: prompt, "v9-0000000": prompt}
    )
    n = 1_000_000
    for label, key in (("production", None), ("production", "user-42"), ("canary", "user-42")):
        best = min(timeit.repeat(lambda: c.get("support_agent", label, key), number=n, repeat=5))
        print(f"get(support_agent, {label}, key={key!r}): {best / n * 1e9:.0f} ns per call (best of 5 × {n:,})")


if __name__ == "__main__":
    main()
