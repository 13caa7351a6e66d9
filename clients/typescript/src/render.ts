/**
 * Local rendering, the same as `promptgate render` (`crates/core/src/render.rs`): variables
 * checked against their declarations and completed with their defaults, messages rendered by
 * minijinja (strict undefined, trailing newlines kept, no escaping), few-shot turns after the
 * leading system messages, and the provider-neutral request.
 */

import { Environment } from "minijinja-js";

import { type Json, F64, compact, plain, sorted, struct } from "./json.js";

export class RenderError extends Error {
  override name = "RenderError";
}

type Obj = { [key: string]: Json };

function jsonType(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return "a boolean";
  if (typeof v === "number" || typeof v === "bigint" || v instanceof F64) return "a number";
  if (typeof v === "string") return "a string";
  if (Array.isArray(v)) return "an array";
  return "an object";
}

function accepts(kind: string, v: unknown): boolean {
  switch (kind) {
    case "string":
      return typeof v === "string";
    case "number":
      return typeof v === "number" || typeof v === "bigint" || v instanceof F64;
    case "integer":
      return (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint" || (v instanceof F64 && Number.isInteger(v.value));
    case "boolean":
      return typeof v === "boolean";
    case "array":
      return Array.isArray(v);
    case "object":
      return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof F64);
    default:
      return true;
  }
}

function closest(word: string, names: string[]): string | undefined {
  // Levenshtein distance ≤ 2, or a shared prefix of 3: enough for typos.
  const dist = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const tmp = row[j]!;
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = tmp;
      }
    }
    return row[b.length]!;
  };
  return names.map((n) => [n, dist(word, n)] as const).filter(([, d]) => d <= 2).sort((a, b) => a[1] - b[1])[0]?.[0];
}

/** The variables a render uses: every declared one, given or defaulted, of its type. */
export function bind(artifact: Obj, given: Record<string, unknown>, subject: string): Record<string, unknown> {
  const declared = (artifact["variables"] ?? {}) as Obj;
  const problems: string[] = [];
  for (const k of Object.keys(given)) {
    if (!(k in declared)) {
      const hint = closest(k, Object.keys(declared));
      problems.push(`${subject} declares no variable \`${k}\`` + (hint ? `; did you mean \`${hint}\`?` : ""));
    }
  }
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(declared).sort()) {
    const decl = (declared[name] ?? {}) as Obj;
    const kind = (decl["type"] as string | undefined) ?? "string";
    let v: unknown;
    if (Object.prototype.hasOwnProperty.call(given, name)) v = given[name];
    else if ("default" in decl) v = plain(decl["default"]!);
    else {
      problems.push(`missing variable \`${name}\` for ${subject}`);
      continue;
    }
    if (accepts(kind, v)) out[name] = v;
    else problems.push(`variable \`${name}\` of ${subject} must be a ${kind}, got ${jsonType(v)}`);
  }
  if (problems.length) throw new RenderError(problems.join("; "));
  return out;
}

/** Why a schema is not strict (every object closed, every property required). */
export function strictProblem(schema: Json, at = ""): string | undefined {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema) || schema instanceof F64) return undefined;
  const o = schema as Obj;
  const t = o["type"];
  const isObject = t === "object" || (Array.isArray(t) && t.includes("object")) || "properties" in o;
  if (isObject) {
    const here = at || "/";
    if (o["additionalProperties"] !== false) return `the object at \`${here}\` does not set \`additionalProperties: false\``;
    const req = Array.isArray(o["required"]) ? new Set((o["required"] as Json[]).filter((r) => typeof r === "string")) : new Set();
    const props = o["properties"];
    if (typeof props === "object" && props !== null && !Array.isArray(props) && !(props instanceof F64)) {
      for (const k of Object.keys(props).sort()) if (!req.has(k)) return `property \`${k}\` of the object at \`${here}\` is not required`;
    }
  }
  for (const k of Object.keys(o).sort()) {
    const child = o[k]!;
    let p: string | undefined;
    if (["properties", "$defs", "definitions"].includes(k) && typeof child === "object" && child !== null && !Array.isArray(child) && !(child instanceof F64)) {
      for (const name of Object.keys(child).sort()) if ((p = strictProblem((child as Obj)[name]!, `${at}/${k}/${name}`))) return p;
    } else if (["items", "additionalProperties", "not"].includes(k)) {
      if ((p = strictProblem(child, `${at}/${k}`))) return p;
    } else if (["anyOf", "allOf", "oneOf", "prefixItems"].includes(k) && Array.isArray(child)) {
      for (let i = 0; i < child.length; i++) if ((p = strictProblem(child[i]!, `${at}/${k}/${i}`))) return p;
    }
  }
  return undefined;
}

/** A version's templates, compiled once. */
export class Compiled {
  private readonly env: Environment;

  constructor(private readonly artifact: Obj) {
    const env = new Environment();
    env.undefinedBehavior = "strict";
    env.keepTrailingNewline = true;
    ((artifact["messages"] ?? []) as Obj[]).forEach((m, i) => env.addTemplate(`m${i}`, m["content"] as string));
    this.env = env;
  }

  private render(i: number, ctx: Record<string, unknown>, what: string, subject: string): string {
    try {
      return this.env.renderTemplate(`m${i}`, ctx);
    } catch (e) {
      const detail = String((e as Error).message ?? e).split("\n")[0];
      throw new RenderError(`cannot render ${what} of ${subject}: ${detail}`);
    }
  }

  request(prompt: string, versionId: string, variables: Record<string, unknown>): Obj {
    const a = this.artifact;
    const subject = `\`${prompt}@${versionId}\``;
    const bound = bind(a, variables, subject);
    const input = (a["messages"] ?? []) as Obj[];
    const messages: Obj[] = input.map((m, i) => struct({ role: m["role"]!, content: this.render(i, bound, `\`messages[${i}]\``, subject) }));
    const few = (a["few_shot"] ?? []) as Obj[];
    if (few.length) {
      const users = input.map((m, i) => (m["role"] === "user" ? i : -1)).filter((i) => i >= 0);
      const shots: Obj[] = [];
      few.forEach((ex, i) => {
        const inp = ex["input"]!;
        let user: string;
        if (typeof inp === "string") user = inp;
        else if (typeof inp === "object" && inp !== null && !Array.isArray(inp) && !(inp instanceof F64)) {
          if (!users.length) throw new RenderError("few-shot inputs given as variables need a user message template");
          user = this.render(users[users.length - 1]!, { ...bound, ...(plain(inp) as object) }, `few-shot example ${i}`, subject);
        } else user = compact(sorted(inp));
        const out = ex["output"]!;
        shots.push(
          struct({ role: "user", content: user }),
          struct({ role: "assistant", content: typeof out === "string" ? out : compact(sorted(out)) }),
        );
      });
      let at = 0;
      while (at < input.length && input[at]!["role"] === "system") at++;
      messages.splice(at, 0, ...shots);
    }
    const m = (a["model"] ?? {}) as Obj;
    const params: Obj = { ...((m["params"] ?? {}) as Obj) };
    for (const k of ["temperature", "max_tokens", "top_p", "seed"]) if (m[k] !== undefined && m[k] !== null) params[k] = m[k]!;
    if (Array.isArray(m["stop"]) && m["stop"].length) params["stop"] = m["stop"];
    const tools = ((a["tools"] ?? []) as Obj[]).map((t) => {
      const spec: Obj = struct({ name: t["name"]! });
      if (t["description"] !== undefined && t["description"] !== null) spec["description"] = t["description"];
      spec["parameters"] = sorted(t["parameters"] ?? null);
      return spec;
    });
    const schema = a["output_schema"];
    return struct({
      prompt,
      version_id: versionId,
      provider: m["provider"] ?? null,
      model: m["name"] ?? null,
      params: sorted(params),
      messages,
      tools,
      response_format:
        schema === undefined || schema === null
          ? null
          : struct({ type: "json_schema", name: "output", schema: sorted(schema), strict: strictProblem(schema) === undefined }),
    });
  }
}
