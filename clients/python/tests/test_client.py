"""The Python client against a real `promptgate serve`."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections import Counter

import pytest

from promptgate import Client, NotFound, Unavailable, assign, content_hash
from promptgate._routing import split

from conftest import Repo, Serve, wait_for


def server_json(serve: Serve, path: str) -> dict:
    with urllib.request.urlopen(serve.url + path) as r:
        return json.loads(r.read())


def test_a_label_is_fetched_once_then_served_from_memory(repo: Repo, serve: Serve) -> None:
    v1 = repo.version_id("p@v1")
    with Client(serve.url, push=False) as c:
        p = c.get("p", label="production")
        assert (p.name, p.label, p.version_id) == ("p", "production", v1)
        assert p.messages[0]["content"] == "You are assistant number 1."
        assert p.model["temperature"] == 0.1
        # The hash the client verified is the one the registry holds.
        assert p.hash == json.loads(repo.pg("show", "p@v1", "--json").stdout)["hash"]
        assert content_hash(p.artifact) == p.hash
        assert p.span_attributes() == {
            "prompt.name": "p",
            "prompt.version_id": v1,
            "prompt.label": "production",
        }
        # Served from memory: the same object, and no request (the server can go).
        serve.stop()
        assert c.get("p", label="production") is p
        assert c.cached("p", "production") is p
        assert c.cached("p", "staging") is None


def test_a_version_is_fetched_by_id_number_or_hash_once(repo: Repo, serve: Serve) -> None:
    v2 = repo.version_id("p@v2")
    digest = json.loads(repo.pg("show", "p@v2", "--json").stdout)["hash"]
    with Client(serve.url, push=False) as c:
        for sel in (v2, "v2", digest[:12]):
            p = c.get_version("p", sel)
            assert (p.version_id, p.hash, p.label) == (v2, digest, ""), sel
        p = c.get_version("p", "v2")
        serve.stop()
        assert c.get_version("p", "v2") is p  # immutable: from memory, forever
        with pytest.raises(Exception):
            c.get_version("p", "v9")


def test_unknown_prompts_and_labels_are_not_found(repo: Repo, serve: Serve) -> None:
    with Client(serve.url, push=False) as c:
        with pytest.raises(NotFound, match="v9"):
            c.get_version("p", "v9")
        with pytest.raises(NotFound, match="pp"):
            c.get("pp")
        with pytest.raises(NotFound, match="staging"):
            c.get("p", label="staging")


def test_revalidation_is_conditional_and_sees_a_move(repo: Repo, serve: Serve) -> None:
    v1, v2 = repo.version_id("p@v1"), repo.version_id("p@v2")
    with Client(serve.url, push=False) as c:
        first = c.get("p")
        etag = c._entries[("p", "production")].etag
        assert etag == f'"{first.hash}"'
        c.refresh()
        # Not modified: the same state object, nothing refetched.
        assert c.get("p") is first
        metrics = urllib.request.urlopen(serve.url + "/metrics").read().decode()
        assert 'status="304"' in metrics, metrics
        repo.label_set("p", "production", v2, v1)
        assert wait_for(lambda: (c.refresh(), c.get("p").version_id == v2)[1], 3)


def test_a_cli_label_move_is_seen_within_a_second_through_the_event_stream(
    repo: Repo, serve: Serve
) -> None:
    v1, v2 = repo.version_id("p@v1"), repo.version_id("p@v2")
    # A TTL far beyond the test: only the event stream can deliver the move.
    with Client(serve.url, ttl=3600) as c:
        assert c.get("p").version_id == v1
        # The stream is open before the move (its first event would otherwise be missed).
        assert wait_for(lambda: 'promptgate_event_streams 1' in urllib.request.urlopen(serve.url + "/metrics").read().decode(), 3) is not None
        repo.label_set("p", "production", v2, v1)
        took = wait_for(lambda: c.get("p").version_id == v2, 1.0)
        assert took is not None, "the move was not seen within 1 s"


def test_a_stopped_server_leaves_the_last_version_served(repo: Repo, serve: Serve) -> None:
    with Client(serve.url, ttl=0.05) as c:
        p = c.get("p")
        serve.stop()
        # Refreshes fail from now on; what was fetched is still served.
        assert wait_for(lambda: False, 0.3) is None
        assert c.get("p").version_id == p.version_id


def test_a_fresh_process_with_the_server_down_uses_the_disk_copy(
    repo: Repo, serve: Serve, tmp_path
) -> None:
    disk = str(tmp_path / "lkg")
    v1 = repo.version_id("p@v1")
    with Client(serve.url, cache_dir=disk, push=False) as c:
        c.get("p")
        c.flush()
    files = os.listdir(disk)
    assert files == ["p@production.json"], files
    url = serve.url
    serve.stop()
    with Client(url, cache_dir=disk, push=False, timeout=0.5) as c:
        assert c.get("p").version_id == v1
    # Without a copy, and with the server down: a clear error saying what to do.
    with Client(url, push=False, timeout=0.5) as c:
        with pytest.raises(Unavailable, match="cache_dir"):
            c.get("p")


def test_a_corrupted_disk_copy_is_refused(repo: Repo, serve: Serve, tmp_path) -> None:
    disk = tmp_path / "lkg"
    with Client(serve.url, cache_dir=str(disk), push=False) as c:
        c.get("p")
        c.flush()
    copy = disk / "p@production.json"
    copy.write_text(copy.read_text().replace("assistant number 1", "assistant number 9"))
    url = serve.url
    serve.stop()
    with Client(url, cache_dir=str(disk), push=False, timeout=0.5) as c:
        with pytest.raises(Unavailable, match="no usable last-known-good copy"):
            c.get("p")
    copy.write_text("{ not json")
    with Client(url, cache_dir=str(disk), push=False, timeout=0.5) as c:
        with pytest.raises(Unavailable):
            c.get("p")


def test_a_prompt_the_server_no_longer_has_stops_being_served(
    repo: Repo, serve: Serve, tmp_path
) -> None:
    disk = tmp_path / "lkg"
    with Client(serve.url, cache_dir=str(disk), push=False) as c:
        c.get("p")
        c.flush()
        shutil.rmtree(repo.path / "prompts" / "p")
        assert wait_for(lambda: urllib.request.urlopen(serve.url + "/v1/prompts").read() == b'{"prompts":[]}', 8) is not None
        c.refresh()
        assert c.cached("p", "production") is None
        with pytest.raises(NotFound):
            c.get("p")
        c.flush()
        assert not (disk / "p@production.json").exists()


def test_routing_matches_the_server_and_the_weights(repo: Repo, serve: Serve) -> None:
    v1, v3 = repo.version_id("p@v1"), repo.version_id("p@v3")
    repo.pg("label", "set", "p", "production", f"{v3}:10,{v1}:90", "--expect", v1, "-m", "canary")
    assert wait_for(lambda: "split" in server_json(serve, "/v1/prompts/p?label=production"), 3)
    with Client(serve.url, push=False) as c:
        # Keys the server assigns, one by one: the client agrees on every one.
        for i in range(200):
            key = f"user-{i}"
            want = server_json(serve, f"/v1/prompts/p?label=production&key={key}")["version_id"]
            assert c.get("p", routing_key=key).version_id == want, key
        # No key: the primary (largest) version.
        assert c.get("p").version_id == v1
    target = split({v1: 90, v3: 10})
    counts = Counter(assign(target, "production", f"key-{i}") for i in range(100_000))
    assert abs(counts[v3] / 100_000 - 0.10) < 0.01, counts
    # Sticky: growing the canary only moves keys onto it.
    grown = split({v1: 50, v3: 50})
    for i in range(10_000):
        k = f"key-{i}"
        if assign(target, "production", k) == v3:
            assert assign(grown, "production", k) == v3


def test_a_bundle_serves_every_label_without_a_server(repo: Repo, tmp_path) -> None:
    out = tmp_path / "prompts.json"
    repo.pg("bundle", "--out", str(out))
    c = Client.from_bundle(str(out))
    assert c.get("p").version_id == repo.version_id("p@v1")
    text = out.read_text()
    out.write_text(text.replace("assistant number 1", "assistant number 7"))
    with pytest.raises(Exception, match="digest"):
        Client.from_bundle(str(out))


def test_a_fetched_prompt_renders_as_the_cli_does_and_for_each_sdk(repo: Repo, serve: Serve) -> None:
    from promptgate import RenderError

    with Client(serve.url, push=False) as c:
        p = c.get("p")
    cli = repo.pg("render", "p@production", "--var", "question=Où est ma facture ?").stdout
    assert p.render_json(question="Où est ma facture ?") + "\n" == cli
    req = p.render(question="hi")
    assert [m["role"] for m in req["messages"]] == ["system", "user"]
    assert req["messages"][1]["content"] == "hi"
    # What is wrong is named: a missing, a mistyped and an unknown variable.
    with pytest.raises(RenderError, match="missing variable `question`"):
        p.render()
    with pytest.raises(RenderError, match="must be a string, got a number"):
        p.render(question=3)
    with pytest.raises(RenderError, match="did you mean `question`"):
        p.render(question="x", questoin="y")
    # The bodies promptgate's own providers send.
    o = p.to_openai(question="hi")
    assert (o["model"], o["temperature"], o["messages"][1]) == (
        "gpt-4o-mini",
        0.1,
        {"role": "user", "content": "hi"},
    )
    a = p.to_anthropic(question="hi")
    assert a["system"] == "You are assistant number 1."
    assert a["messages"] == [{"role": "user", "content": "hi"}]
    assert a["max_tokens"] == 1024 and "seed" not in a


def test_the_asyncio_client_shares_the_cache_and_sees_moves(repo: Repo, serve: Serve, tmp_path) -> None:
    import asyncio

    from promptgate import AsyncClient

    v1, v2 = repo.version_id("p@v1"), repo.version_id("p@v2")

    async def main() -> None:
        async with AsyncClient(serve.url, ttl=3600, cache_dir=str(tmp_path / "lkg")) as c:
            p = await c.get("p")
            assert p.version_id == v1
            assert await c.get("p") is p  # from memory
            with pytest.raises(NotFound):
                await c.get("p", label="staging")
            assert wait_for(
                lambda: "promptgate_event_streams 1"
                in urllib.request.urlopen(serve.url + "/metrics").read().decode(),
                3,
            )
            # The event loop keeps running while the client waits on nothing.
            repo.label_set("p", "production", v2, v1)
            for _ in range(200):
                if (await c.get("p")).version_id == v2:
                    break
                await asyncio.sleep(0.005)
            assert (await c.get("p")).version_id == v2
            await c.flush()
        assert (tmp_path / "lkg" / "p@production.json").exists()

    asyncio.run(main())


def test_outcomes_go_on_the_callers_span_without_opentelemetry(repo: Repo, tmp_path) -> None:
    from promptgate import PromptgateError, record_outcome

    out = tmp_path / "b.json"
    repo.pg("bundle", "--out", str(out))
    p = Client.from_bundle(str(out)).get("p")

    class Span:
        def __init__(self) -> None:
            self.attrs: dict = {}

        def set_attribute(self, k: str, v: object) -> None:
            self.attrs[k] = v

    span = Span()
    attrs = record_outcome(p, span, tool_call_ok=True, feedback_score=0.8)
    assert span.attrs == attrs == {
        "prompt.name": "p",
        "prompt.version_id": p.version_id,
        "prompt.label": "production",
        "app.tool_call_ok": 1,
        "app.feedback_score": 0.8,
    }
    # No span and no OpenTelemetry installed: the attributes, for the caller to log.
    assert record_outcome(p, feedback_score=1)["app.feedback_score"] == 1
    with pytest.raises(PromptgateError, match="finite number"):
        record_outcome(p, span, latency=float("nan"))


def test_a_url_with_credentials_is_refused_without_repeating_them() -> None:
    from promptgate import PromptgateError

    with pytest.raises(PromptgateError) as e:
        Client("http://ci:s3cret-pw@127.0.0.1:7070", push=False)
    assert "s3cret-pw" not in str(e.value) and "token" in str(e.value)
