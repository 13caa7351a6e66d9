"""The synchronous runtime client: prompts by label from memory.

A label is fetched once (within ``timeout``), then served from memory without a network call.
A background thread revalidates every cached label each ``ttl`` seconds with ``If-None-Match``
(a ``304`` costs no body), and another follows the server's event stream (``/v1/events``) so a
label move is seen within milliseconds; after a break it resumes with ``Last-Event-ID`` and
revalidates everything, as it does on a ``reset``. On any error the client keeps serving what
it has. With ``cache_dir``, each label's last-known-good copy is written to disk (atomically,
by a writer thread, never on the caller's path) and used when the server cannot be reached at
start-up; a copy whose artifacts do not match their hashes is refused. A prompt or label the
server says is gone stops being served at its next confirmation.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from . import _json, _render, _routing
from ._canonical import content_hash
from ._routing import Target

DEFAULT_TTL = 30.0
DEFAULT_TIMEOUT = 2.0


class PromptgateError(Exception):
    """Base of every error the client raises."""


class NotFound(PromptgateError):
    """The server says the prompt, label or version does not exist."""


class Unavailable(PromptgateError):
    """Nothing to serve: the server cannot be reached and there is no usable copy on disk."""


@dataclass(frozen=True)
class Prompt:
    """One version of a prompt, as a label serves it to a caller."""

    name: str
    label: str
    version_id: str
    hash: str
    #: The provider-neutral artifact, as the server sends it (messages, few-shot, tools,
    #: output schema, model parameters, variables).
    artifact: Dict[str, Any] = field(repr=False)

    @property
    def messages(self) -> List[Dict[str, Any]]:
        return self.artifact.get("messages", [])

    @property
    def model(self) -> Dict[str, Any]:
        return self.artifact.get("model", {})

    @property
    def tools(self) -> List[Dict[str, Any]]:
        return self.artifact.get("tools", [])

    @property
    def few_shot(self) -> List[Dict[str, Any]]:
        return self.artifact.get("few_shot", [])

    @property
    def output_schema(self) -> Optional[Dict[str, Any]]:
        return self.artifact.get("output_schema")

    def render(self, **variables: Any) -> Dict[str, Any]:
        """The provider-neutral request, as ``promptgate render`` makes it: the variables
        checked against their declarations (defaults filled in), the templates rendered by the
        same engine. Raises :class:`RenderError` naming what is wrong."""
        return self._compiled().request(self.name, self.version_id, variables)

    def render_json(self, **variables: Any) -> str:
        """The request as ``promptgate render`` prints it, byte for byte."""
        return _json.pretty(self.render(**variables))

    def to_openai(self, **variables: Any) -> Dict[str, Any]:
        """Keyword arguments for ``client.chat.completions.create(**…)`` of the official
        OpenAI SDK (what promptgate's own OpenAI provider sends)."""
        req = self.render(**variables)
        body: Dict[str, Any] = {"model": req["model"], "messages": req["messages"]}
        body.update(req["params"])
        if req["tools"]:
            body["tools"] = [{"type": "function", "function": _tool(t)} for t in req["tools"]]
        rf = req["response_format"]
        if rf is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": rf["name"], "schema": rf["schema"], "strict": rf["strict"]},
            }
        return body

    def to_anthropic(self, **variables: Any) -> Dict[str, Any]:
        """Keyword arguments for ``client.messages.create(**…)`` of the official Anthropic SDK
        (what promptgate's own Anthropic provider sends): system messages joined into
        ``system``, the output schema as an instruction there, ``max_tokens`` 1024 unless the
        version sets it, ``stop`` as ``stop_sequences``, no ``seed``."""
        req = self.render(**variables)
        system = [m["content"] for m in req["messages"] if m["role"] == "system"]
        text = "\n\n".join(system)
        rf = req["response_format"]
        if rf is not None:
            text += ("\n\n" if text else "") + (
                "Respond with only a JSON value that satisfies this JSON Schema:\n"
                + _json.compact(rf["schema"])
            )
        body: Dict[str, Any] = {"model": req["model"]}
        if text:
            body["system"] = text
        body["messages"] = [m for m in req["messages"] if m["role"] != "system"]
        for k, v in req["params"].items():
            if k == "stop":
                body["stop_sequences"] = v
            elif k != "seed":
                body[k] = v
        body.setdefault("max_tokens", 1024)
        if req["tools"]:
            body["tools"] = [
                {"name": t["name"], "input_schema": t["parameters"], **(
                    {"description": t["description"]} if "description" in t else {}
                )}
                for t in req["tools"]
            ]
        return body

    def _compiled(self) -> _render.Compiled:
        c = self.__dict__.get("_compiled_cache")
        if c is None:
            c = _render.Compiled(self.artifact)
            object.__setattr__(self, "_compiled_cache", c)
        return c

    def span_attributes(self) -> Dict[str, str]:
        """The attributes to put on the caller's own spans (what guarded rollouts read)."""
        return {
            "prompt.name": self.name,
            "prompt.version_id": self.version_id,
            "prompt.label": self.label,
        }


@dataclass(frozen=True)
class _LabelState:
    target: Target
    etag: Optional[str]
    versions: Dict[str, Prompt]

    def serve(self, label: str, routing_key: Optional[str]) -> Optional[Prompt]:
        return self.versions.get(_routing.assign(self.target, label, routing_key))

    def to_json(self) -> Dict[str, Any]:
        # The Rust client's file format: either client reads the other's copies.
        target: Any = (
            self.target if isinstance(self.target, str) else {v: w for v, w in self.target}
        )
        return {
            "target": target,
            "etag": self.etag,
            "versions": {
                i: {
                    "name": p.name,
                    "label": p.label,
                    "version_id": p.version_id,
                    "hash": p.hash,
                    "artifact": p.artifact,
                }
                for i, p in self.versions.items()
            },
        }

    @staticmethod
    def from_json(v: Dict[str, Any]) -> "_LabelState":
        t = v["target"]
        target = t if isinstance(t, str) else _routing.split(t)
        versions = {
            i: Prompt(p["name"], p["label"], p["version_id"], p["hash"], p["artifact"])
            for i, p in v["versions"].items()
        }
        return _LabelState(target, v.get("etag"), versions)


#: What the disk writer does: write (or, with no bytes, remove) a copy; report that
#: everything before is written; stop.
_DiskOp = Union[Tuple[str, bytes], threading.Event, None]


def _tool(t: Dict[str, Any]) -> Dict[str, Any]:
    f = {"name": t["name"], "parameters": t["parameters"]}
    if "description" in t:
        f["description"] = t["description"]
    return f


def _quote(s: str) -> str:
    return urllib.parse.quote(s, safe="-_.~")


class Client:
    """Prompts by label from a ``promptgate serve``; see the module's documentation."""

    def __init__(
        self,
        url: Optional[str],
        token: Optional[str] = None,
        ttl: float = DEFAULT_TTL,
        cache_dir: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        push: bool = True,
    ) -> None:
        # `None`: no server (a client over a bundle), so no refresh and no event stream.
        parsed = urllib.parse.urlsplit((url or "").rstrip("/"))
        if url is not None:
            if parsed.username is not None or parsed.password is not None:
                # A secret in the URL would be repeated by every message that names the server.
                raise PromptgateError("the server URL carries credentials: pass the token as token=")
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise PromptgateError(f"not a server URL: {url!r} (e.g. http://127.0.0.1:7070)")
        self._url = parsed
        self._token = token
        self._ttl = ttl
        self._timeout = timeout
        self._cache_dir = cache_dir
        # (name, label) → state; replaced whole, never mutated, so reads need no lock.
        self._entries: Dict[Tuple[str, str], _LabelState] = {}
        self._versions: Dict[Tuple[str, str], Prompt] = {}
        self._closed = threading.Event()
        self._disk: "Optional[queue.Queue[_DiskOp]]" = None
        self._threads: List[threading.Thread] = []
        if cache_dir is not None:
            self._disk = queue.Queue()
            self._start(self._disk_writer, "promptgate-disk")
        if url is not None:
            self._start(self._refresh_loop, "promptgate-refresh")
            if push:
                self._start(self._event_loop, "promptgate-events")

    # The API.

    def get(
        self, name: str, label: str = "production", routing_key: Optional[str] = None
    ) -> Prompt:
        """The version ``label`` of ``name`` serves to ``routing_key`` (a user or session id;
        ``None`` for the label's primary version): from memory when cached, else fetched, and
        if the server cannot be reached, the last-known-good copy on disk."""
        state = self._entries.get((name, label))
        if state is not None:
            p = state.serve(label, routing_key)
            if p is not None:
                return p
        try:
            state = self._fetch(name, label, None)
        except NotFound:
            raise
        except PromptgateError as e:
            state = self._load_disk(name, label)
            if state is None:
                raise Unavailable(
                    f"{e}; and there is no usable last-known-good copy of `{name}@{label}` on disk"
                    + ("" if self._cache_dir else " (pass cache_dir= to keep one)")
                ) from e
        assert state is not None
        self._entries[(name, label)] = state
        p = state.serve(label, routing_key)
        if p is None:
            raise PromptgateError(f"`{name}@{label}` serves a version that was not fetched")
        return p

    def get_version(self, name: str, version: str) -> Prompt:
        """One version by id (``v3-9f2c1ab``), number (``v3``) or hash prefix. Versions are
        immutable: fetched once (hash verified), then served from memory forever."""
        key = (name, version)
        hit = self._versions.get(key)
        if hit is not None:
            return hit
        got = self._get_json(f"/v1/prompts/{_quote(name)}/versions/{_quote(version)}", None)
        assert got is not None  # no ETag was sent
        b = got[0]
        p = Prompt(name, "", b["version_id"], b["hash"], b["artifact"])
        # Never revalidated: an immutable version has nothing to revalidate.
        self._versions[key] = p
        return p

    def cached(
        self, name: str, label: str = "production", routing_key: Optional[str] = None
    ) -> Optional[Prompt]:
        """From memory only; ``None`` if this label was never fetched (or is gone)."""
        state = self._entries.get((name, label))
        return state.serve(label, routing_key) if state is not None else None

    def refresh(self) -> None:
        """Revalidate every cached label now (what the background refresh does every TTL)."""
        for (name, label), state in list(self._entries.items()):
            self._refresh_one(name, label, state.etag)

    def flush(self) -> None:
        """Wait until every last-known-good copy queued so far is on disk."""
        if self._disk is not None:
            done = threading.Event()
            self._disk.put(done)
            done.wait(5)

    def close(self) -> None:
        """Stop the background threads (the cache stays readable)."""
        self._closed.set()
        if self._disk is not None:
            self._disk.put(None)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # HTTP.

    def _connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        u = self._url
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        return cls(u.hostname or "", u.port, timeout=timeout)

    def _headers(self) -> Dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "promptgate-python/0.1.0"}
        if self._token:
            h["Authorization"] = f"Bearer {self._token}"
        return h

    def _get_json(self, path: str, etag: Optional[str]) -> Optional[Tuple[Dict[str, Any], Optional[str]]]:
        """``None``: not modified."""
        base = f"{self._url.scheme}://{self._url.netloc}"
        headers = self._headers()
        if etag:
            headers["If-None-Match"] = etag
        conn = self._connection(self._timeout)
        try:
            conn.request("GET", self._url.path + path, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise PromptgateError(f"cannot reach the registry at {base}: {e}") from e
        finally:
            conn.close()
        if resp.status == 304:
            return None
        if resp.status == 404:
            try:
                msg = json.loads(text).get("error") or text.decode("utf-8", "replace")
            except ValueError:
                msg = text.decode("utf-8", "replace")
            raise NotFound(msg)
        if resp.status != 200:
            raise PromptgateError(
                f"the registry answered {resp.status}: {text.decode('utf-8', 'replace').strip()}"
            )
        try:
            body = json.loads(text)
            name, version_id, digest = body["name"], body["version_id"], body["hash"]
            artifact = body["artifact"]
        except (ValueError, KeyError, TypeError) as e:
            raise PromptgateError(f"the registry's answer is not a version: {e}") from e
        # The artifact must be what its hash says.
        if content_hash(artifact) != digest:
            raise PromptgateError(f"`{name}@{version_id}` does not match its hash")
        return body, resp.getheader("ETag")

    def _fetch(self, name: str, label: str, etag: Optional[str]) -> Optional[_LabelState]:
        """A label and, for a split, each of its versions. ``None``: not modified."""
        got = self._get_json(f"/v1/prompts/{_quote(name)}?label={_quote(label)}", etag)
        if got is None:
            return None
        body, new_etag = got
        split = body.get("split")
        target: Target = _routing.split(split) if isinstance(split, dict) else body["version_id"]

        def prompt(b: Dict[str, Any]) -> Prompt:
            return Prompt(name, label, b["version_id"], b["hash"], b["artifact"])

        versions = {body["version_id"]: prompt(body)}
        for vid in _routing.versions(target):
            if vid not in versions:
                more = self._get_json(f"/v1/prompts/{_quote(name)}/versions/{_quote(vid)}", None)
                if more is not None:
                    versions[vid] = prompt(more[0])
        state = _LabelState(target, new_etag, versions)
        self._save_disk(name, label, state)
        return state

    def _refresh_one(self, name: str, label: str, etag: Optional[str]) -> None:
        try:
            state = self._fetch(name, label, etag)
        except NotFound:
            # The server confirms it is gone: stop serving it, here and on disk.
            self._entries.pop((name, label), None)
            self._remove_disk(name, label)
            return
        except PromptgateError:
            return  # keep serving what we have
        if state is not None:
            self._entries[(name, label)] = state

    # Disk.

    def _disk_path(self, name: str, label: str) -> Optional[str]:
        if self._cache_dir is None:
            return None
        return os.path.join(self._cache_dir, f"{_quote(name)}@{_quote(label)}.json")

    def _save_disk(self, name: str, label: str, state: _LabelState) -> None:
        path = self._disk_path(name, label)
        if path is not None and self._disk is not None:
            self._disk.put((path, json.dumps(state.to_json()).encode("utf-8")))

    def _remove_disk(self, name: str, label: str) -> None:
        path = self._disk_path(name, label)
        if path is not None and self._disk is not None:
            self._disk.put((path, b""))

    def _load_disk(self, name: str, label: str) -> Optional[_LabelState]:
        path = self._disk_path(name, label)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                state = _LabelState.from_json(json.loads(f.read()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        # A copy whose artifacts do not match their hashes is not good.
        for p in state.versions.values():
            if content_hash(p.artifact) != p.hash:
                return None
        return state

    def _disk_writer(self) -> None:
        assert self._disk is not None
        while True:
            item = self._disk.get()
            if item is None:
                return
            if isinstance(item, threading.Event):  # everything before it is written
                item.set()
                continue
            path, data = item
            try:
                if not data:
                    os.remove(path)
                    continue
                d = os.path.dirname(path) or "."
                os.makedirs(d, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=d)
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, path)
                except BaseException:
                    os.unlink(tmp)
                    raise
            except OSError:
                pass  # a copy not written costs a fallback later, nothing more

    # Background threads.

    def _start(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _refresh_loop(self) -> None:
        while not self._closed.wait(self._ttl):
            self.refresh()

    def _event_loop(self) -> None:
        last_id: Optional[str] = None
        delay = 0.1
        while not self._closed.is_set():
            try:
                for kind, data, event_id in self._events(last_id):
                    delay = 0.1
                    if kind == "open":
                        if last_id is not None:
                            self.refresh()  # anything missed while disconnected
                        continue
                    if event_id:
                        last_id = event_id
                    if kind == "label":
                        self._on_label(data)
                    elif kind == "reset":
                        self.refresh()
                    if self._closed.is_set():
                        return
            except (OSError, http.client.HTTPException, PromptgateError):
                pass
            if self._closed.wait(delay):
                return
            delay = min(delay * 2, 5.0)

    def _on_label(self, data: str) -> None:
        try:
            v = json.loads(data)
            key = (v["prompt"], v["label"])
        except (ValueError, KeyError, TypeError):
            return
        if key in self._entries:
            self._refresh_one(key[0], key[1], None)

    def _events(self, last_id: Optional[str]) -> Iterator[Tuple[str, str, Optional[str]]]:
        """``("open", "", None)`` once connected, then each event as (kind, data, id)."""
        # Longer than the server's 15 s keep-alive: a silent connection is a dead one.
        conn = self._connection(max(self._timeout, 30.0))
        headers = self._headers()
        headers["Accept"] = "text/event-stream"
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            conn.request("GET", self._url.path + "/v1/events", headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise PromptgateError(f"the event stream answered {resp.status}")
            yield "open", "", None
            kind, data, event_id = "message", [], None
            while not self._closed.is_set():
                raw = resp.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    if data or kind != "message":
                        yield kind, "\n".join(data), event_id
                    kind, data, event_id = "message", [], None
                elif line.startswith(":"):
                    continue
                else:
                    fieldname, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if fieldname == "event":
                        kind = value
                    elif fieldname == "data":
                        data.append(value)
                    elif fieldname == "id":
                        event_id = value
        finally:
            conn.close()

    # Bundles.

    @classmethod
    def from_bundle(cls, path: str) -> "Client":
        """Every label of every prompt of a bundle file (``promptgate bundle``): no server, no
        refresh. The bundle's digest and every version's hash are verified."""
        with open(path, "rb") as f:
            b = json.loads(f.read())
        if b.get("bundle_version") != 1:
            raise PromptgateError(f"{path}: not a promptgate bundle of version 1")
        if content_hash(b.get("prompts")) != b.get("digest"):
            raise PromptgateError(f"{path}: the bundle's digest does not match its content")
        client = cls(None)
        for name, doc in b["prompts"].items():
            by_id = {v["version_id"]: v for v in doc["versions"]}
            for v in by_id.values():
                if content_hash(v["artifact"]) != v["hash"]:
                    raise PromptgateError(f"{path}: `{name}@{v['version_id']}` does not match its hash")
            for label, t in doc.get("labels", {}).items():
                target: Target = t if isinstance(t, str) else _routing.split(t)
                versions = {
                    i: Prompt(name, label, i, by_id[i]["hash"], by_id[i]["artifact"])
                    for i in _routing.versions(target)
                    if i in by_id
                }
                client._entries[(name, label)] = _LabelState(target, None, versions)
        return client
