"""Local rendering, the same as ``promptgate render`` (``crates/core/src/render.rs``): the
variables checked and completed with their defaults, the messages rendered by minijinja (the
same engine, strict undefined, trailing newlines kept, no escaping), few-shot turns after the
leading system messages, and the provider-neutral request."""

from __future__ import annotations

import difflib
from typing import Any, Dict, List, Optional

import minijinja

from . import _json


class RenderError(Exception):
    """The variables do not fit the version, or a template does not render."""


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _accepts(kind: str, v: Any) -> bool:
    if kind == "string":
        return isinstance(v, str)
    if kind == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer()
        )
    if kind == "boolean":
        return isinstance(v, bool)
    if kind == "array":
        return isinstance(v, list)
    if kind == "object":
        return isinstance(v, dict)
    return True  # any


def bind(artifact: Dict[str, Any], given: Dict[str, Any], subject: str) -> Dict[str, Any]:
    """The variables a render uses: every declared one, given or defaulted, of its type."""
    declared: Dict[str, Any] = artifact.get("variables", {})
    problems: List[str] = []
    for k in given:
        if k not in declared:
            hint = difflib.get_close_matches(k, list(declared), n=1)
            problems.append(
                f"{subject} declares no variable `{k}`"
                + (f"; did you mean `{hint[0]}`?" if hint else "")
            )
    out: Dict[str, Any] = {}
    for name in sorted(declared):
        decl = declared[name] or {}
        kind = decl.get("type", "string")
        if name in given:
            v = given[name]
        elif "default" in decl:
            v = decl["default"]
        else:
            problems.append(f"missing variable `{name}` for {subject}")
            continue
        if _accepts(kind, v):
            out[name] = v
        else:
            problems.append(
                f"variable `{name}` of {subject} must be a {kind}, got {_json_type(v)}"
            )
    if problems:
        raise RenderError("; ".join(problems))
    return out


def strict_problem(schema: Any, at: str = "") -> Optional[str]:
    """Why a schema is not strict (every object closed and every property required)."""
    if not isinstance(schema, dict):
        return None
    t = schema.get("type")
    is_object = t == "object" or (isinstance(t, list) and "object" in t) or "properties" in schema
    if is_object:
        here = at or "/"
        if schema.get("additionalProperties") is not False:
            return f"the object at `{here}` does not set `additionalProperties: false`"
        required = {r for r in schema.get("required", []) if isinstance(r, str)} if isinstance(
            schema.get("required"), list
        ) else set()
        props = schema.get("properties")
        if isinstance(props, dict):
            for k in sorted(props):
                if k not in required:
                    return f"property `{k}` of the object at `{here}` is not required"
    for k in sorted(schema):
        child = schema[k]
        if k in ("properties", "$defs", "definitions") and isinstance(child, dict):
            for name in sorted(child):
                p = strict_problem(child[name], f"{at}/{k}/{name}")
                if p:
                    return p
        elif k in ("items", "additionalProperties", "not"):
            p = strict_problem(child, f"{at}/{k}")
            if p:
                return p
        elif k in ("anyOf", "allOf", "oneOf", "prefixItems") and isinstance(child, list):
            for i, s in enumerate(child):
                p = strict_problem(s, f"{at}/{k}/{i}")
                if p:
                    return p
    return None


class Compiled:
    """A version's templates, compiled once."""

    def __init__(self, artifact: Dict[str, Any]) -> None:
        self.artifact = artifact
        templates = {f"m{i}": m["content"] for i, m in enumerate(artifact.get("messages", []))}
        env = minijinja.Environment(templates=templates)
        env.undefined_behavior = "strict"
        env.keep_trailing_newline = True
        env.auto_escape_callback = lambda _name: False
        self.env = env

    def _render(self, i: int, ctx: Dict[str, Any], what: str, subject: str) -> str:
        try:
            return self.env.render_template(f"m{i}", **ctx)
        except minijinja.TemplateError as e:
            detail = str(e).split("\n", 1)[0]
            raise RenderError(f"cannot render {what} of {subject}: {detail}") from e

    def request(self, prompt: str, version_id: str, variables: Dict[str, Any]) -> Dict[str, Any]:
        a = self.artifact
        subject = f"`{prompt}@{version_id}`"
        bound = bind(a, variables, subject)
        messages_in = a.get("messages", [])
        messages = [
            {"role": m["role"], "content": self._render(i, bound, f"`messages[{i}]`", subject)}
            for i, m in enumerate(messages_in)
        ]
        few = a.get("few_shot", [])
        if few:
            users = [i for i, m in enumerate(messages_in) if m["role"] == "user"]
            shots = []
            for i, ex in enumerate(few):
                inp = ex.get("input")
                if isinstance(inp, str):
                    user = inp
                elif isinstance(inp, dict):
                    if not users:
                        raise RenderError(
                            "few-shot inputs given as variables need a user message template"
                        )
                    merged = dict(bound)
                    merged.update(inp)
                    user = self._render(users[-1], merged, f"few-shot example {i}", subject)
                else:
                    user = _json.compact(_json.sorted_value(inp))
                out = ex.get("output")
                assistant = out if isinstance(out, str) else _json.compact(_json.sorted_value(out))
                shots += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
            at = 0
            while at < len(messages_in) and messages_in[at]["role"] == "system":
                at += 1
            messages[at:at] = shots
        m = a.get("model", {})
        params = dict(m.get("params", {}))
        for k in ("temperature", "max_tokens", "top_p", "seed"):
            if m.get(k) is not None:
                params[k] = m[k]
        if m.get("stop"):
            params["stop"] = m["stop"]
        tools = []
        for t in a.get("tools", []):
            spec: Dict[str, Any] = {"name": t["name"]}
            if t.get("description") is not None:
                spec["description"] = t["description"]
            spec["parameters"] = _json.sorted_value(t.get("parameters"))
            tools.append(spec)
        schema = a.get("output_schema")
        return {
            "prompt": prompt,
            "version_id": version_id,
            "provider": m.get("provider"),
            "model": m.get("name"),
            "params": _json.sorted_value(params),
            "messages": messages,
            "tools": tools,
            "response_format": None
            if schema is None
            else {
                "type": "json_schema",
                "name": "output",
                "schema": _json.sorted_value(schema),
                "strict": strict_problem(schema) is None,
            },
        }
