"""A real promptgate repository and a real `promptgate serve` over it, per test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]
BIN = os.environ.get("PROMPTGATE_BIN", str(ROOT / "target" / "debug" / "promptgate"))

CONFIG = "version: 1\nproviders:\n  openai: { kind: openai, api_key_env: OPENAI_API_KEY }\n"


def version_yaml(system: str, temperature: float) -> str:
    return (
        f"model: {{ provider: openai, name: gpt-4o-mini, temperature: {temperature} }}\n"
        "variables:\n  question: { type: string }\n"
        f'messages:\n  - role: system\n    content: "{system}"\n'
        '  - role: user\n    content: "{{ question }}"\n'
    )


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path

    def pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [BIN, "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PROMPTGATE_ACTOR": "pytest"},
        )
        if check and r.returncode != 0:
            raise AssertionError(f"promptgate {' '.join(args)}: {r.returncode}\n{r.stderr}")
        return r

    def write(self, rel: str, text: str) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def version_id(self, ref: str) -> str:
        return json.loads(self.pg("show", ref, "--json").stdout)["version_id"]

    def label_set(self, prompt: str, label: str, to: str, expect: str) -> None:
        self.pg("label", "set", prompt, label, to, "--expect", expect, "-m", "test")


class Serve:
    def __init__(self, repo: Repo, extra: List[str]) -> None:
        self.log = repo.path / "serve.log"
        self.proc = subprocess.Popen(
            [BIN, "-C", str(repo.path), "serve", "--listen", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE,
            stderr=open(self.log, "w"),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "http://" not in line:
            raise AssertionError(f"no address in {line!r}: {self.log.read_text()}")
        self.url = "http://" + line.split("http://", 1)[1].split()[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """Prompt `p` with v1..v3 registered and `production` → v1."""
    r = Repo(tmp_path / "repo")
    r.write("promptgate.yaml", CONFIG)
    for i in (1, 2, 3):
        r.write(f"prompts/p/v{i}.yaml", version_yaml(f"You are assistant number {i}.", 0.1 * i))
    r.pg("add", "p")
    r.label_set("p", "production", "v1", "none")
    return r


@pytest.fixture
def serve(repo: Repo) -> Iterator[Serve]:
    s = Serve(repo, [])
    yield s
    s.stop()


def wait_for(pred, timeout: float = 5.0, every: float = 0.005) -> Optional[float]:
    """Seconds until `pred()` held, or None if it never did within `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(every)
    return None
