"""`get` on a cache hit (`python clients/python/bench.py`): no network call, one dict lookup;
and with `--propagation`, how long a label move takes to reach `get` through a real serve.

Starts nothing: the client is filled from a bundle written by the promptgate binary
(`PROMPTGATE_BIN`, default `target/release/promptgate` then `target/debug/promptgate`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
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


def propagation(moves: int = 100) -> None:
    """Label moves (by the CLI, as an on-call engineer makes them) → `get` returning the new
    version, through a real `promptgate serve` and its event stream."""
    sys.path.insert(0, str(Path(__file__).parent / "tests"))
    from conftest import CONFIG, Repo, Serve, version_yaml  # noqa: E402

    with tempfile.TemporaryDirectory() as d:
        repo = Repo(Path(d) / "repo")
        repo.write("promptgate.yaml", CONFIG)
        for i in (1, 2):
            repo.write(f"prompts/p/v{i}.yaml", version_yaml(f"Assistant {i}.", 0.1))
        repo.pg("add", "p")
        ids = [repo.version_id("p@v1"), repo.version_id("p@v2")]
        repo.label_set("p", "production", ids[0], "none")
        serve = Serve(repo, [])
        try:
            c = Client(serve.url, ttl=3600)
            c.get("p")
            time.sleep(0.5)  # the event stream is open
            took = []
            for i in range(moves):
                want, was = ids[(i + 1) % 2], ids[i % 2]
                repo.label_set("p", "production", want, was)
                t0 = time.perf_counter()
                while c.get("p").version_id != want:
                    time.sleep(0.0002)
                took.append((time.perf_counter() - t0) * 1000)
            c.close()
        finally:
            serve.stop()
    took.sort()
    p = lambda q: took[min(len(took) - 1, int(q * len(took)))]  # noqa: E731
    print(f"move → get over {moves} moves: p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {took[-1]:.1f} ms")


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
    if "--propagation" in sys.argv:
        propagation()
    else:
        main()
