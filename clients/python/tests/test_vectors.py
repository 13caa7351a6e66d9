"""The shared vectors (`clients/vectors/`), which the Rust tests check too."""

from __future__ import annotations

import json
from pathlib import Path

from promptgate import assign, canonical_json, content_hash
from promptgate._routing import split

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def load(name: str) -> list:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))["vectors"]


def test_canonical_json_and_hashes() -> None:
    vectors = load("canonical.json")
    assert len(vectors) >= 20
    for v in vectors:
        value = json.loads(v["json"])
        assert canonical_json(value) == v["canonical"], v["json"]
        assert content_hash(value) == v["sha256"], v["json"]


def test_routing() -> None:
    vectors = load("routing.json")
    assert len(vectors) >= 50
    for v in vectors:
        assert assign(split(v["weights"]), v["label"], v["key"]) == v["version"], v


def test_rendering_is_byte_identical_to_promptgate_render() -> None:
    from promptgate import Prompt

    vectors = load("render.json")
    assert len(vectors) >= 5
    for v in vectors:
        assert content_hash(v["artifact"]) == v["hash"], v["prompt"]
        p = Prompt(v["prompt"], "production", v["version_id"], v["hash"], v["artifact"])
        assert p.render_json(**v["variables"]) + "\n" == v["rendered"], v["prompt"]


def test_conditional_fetches_against_a_real_server(repo, serve) -> None:
    import urllib.error
    import urllib.request

    digest = json.loads(repo.pg("show", "p@v1", "--json").stdout)["hash"]
    for v in load("etag.json"):
        header = v["if_none_match"].replace("{hash}", digest).replace("{prefix}", digest[:12])
        req = urllib.request.Request(serve.url + "/v1/prompts/p?label=production")
        if header:
            req.add_header("If-None-Match", header)
        try:
            status = urllib.request.urlopen(req).status
        except urllib.error.HTTPError as e:
            status = e.code
        assert status == v["status"], header
