/**
 * Outcomes for guarded rollouts: a prompt's attributes and the caller's numeric outcomes on an
 * OpenTelemetry span, which `promptgate serve` aggregates per version. OpenTelemetry is not a
 * dependency: the span is the one given, or the active one when `@opentelemetry/api` is
 * installed.
 */

import { type Prompt, PromptgateError } from "./client.js";

/** What `recordOutcome` needs of a span (OpenTelemetry's `Span` has it). */
export interface SpanLike {
  setAttribute(key: string, value: string | number): unknown;
}

/** Set `prompt.name`, `prompt.version_id`, `prompt.label` and each outcome as `app.<name>`
 * (`{ tool_call_ok: true }` → `app.tool_call_ok` = 1) on `span`, or on OpenTelemetry's active
 * span. Resolves to the attributes, so a caller without OpenTelemetry can log them. */
export async function recordOutcome(
  prompt: Prompt,
  outcomes: Record<string, number | boolean>,
  span?: SpanLike,
): Promise<Record<string, string | number>> {
  const attrs: Record<string, string | number> = { ...prompt.spanAttributes() };
  for (const [name, raw] of Object.entries(outcomes)) {
    const value = typeof raw === "boolean" ? Number(raw) : raw;
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new PromptgateError(`outcome \`${name}\` must be a finite number, not ${String(raw)}`);
    }
    attrs[`app.${name}`] = value;
  }
  let target = span;
  if (!target) {
    try {
      const api = "@opentelemetry/api";
      const otel = (await import(api)) as { trace: { getActiveSpan(): SpanLike | undefined } };
      target = otel.trace.getActiveSpan();
    } catch {
      /* OpenTelemetry is not installed */
    }
  }
  if (target) for (const [k, v] of Object.entries(attrs)) target.setAttribute(k, v);
  return attrs;
}
