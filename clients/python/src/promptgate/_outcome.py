"""Outcomes for guarded rollouts: a prompt's attributes and the caller's numeric outcomes on
an OpenTelemetry span, which `promptgate serve` aggregates per version. OpenTelemetry is not a
dependency: the span is the one given, or the current one when the `opentelemetry` package
is installed."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from ._client import Prompt, PromptgateError


def record_outcome(prompt: Prompt, span: Optional[Any] = None, **outcomes: float) -> Dict[str, Any]:
    """Set ``prompt.name``, ``prompt.version_id``, ``prompt.label`` and each outcome as
    ``app.<name>`` (``tool_call_ok=1`` → ``app.tool_call_ok``) on ``span`` — any object with
    ``set_attribute`` — or on OpenTelemetry's current span. Returns the attributes, so a caller
    without OpenTelemetry can log them. An outcome must be a finite number."""
    attrs: Dict[str, Any] = dict(prompt.span_attributes())
    for name, value in outcomes.items():
        if isinstance(value, bool):
            value = 1 if value else 0
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PromptgateError(f"outcome `{name}` must be a finite number, not {value!r}")
        attrs[f"app.{name}"] = value
    if span is None:
        try:
            from opentelemetry import trace  # type: ignore[import-not-found]
        except ImportError:
            return attrs
        span = trace.get_current_span()
    for k, v in attrs.items():
        span.set_attribute(k, v)
    return attrs
