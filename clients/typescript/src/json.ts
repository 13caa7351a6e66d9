/**
 * JSON as promptgate writes and hashes it. JavaScript has one number type; promptgate has two
 * (serde_json's integers and f64s), and both its canonical hash and its output tell them
 * apart (`1` vs `1.0`, `1e16` vs `10000000000000000`). So JSON is read losslessly: a number
 * written with a `.` or an exponent is an {@link F64}, an integer beyond 2^53 a `bigint`.
 */

import { createHash } from "node:crypto";

/** A number that was written as a float (`0.1`, `1.0`, `1e+16`). */
export class F64 {
  constructor(readonly value: number) {}
  valueOf(): number {
    return this.value;
  }
  toJSON(): number {
    return this.value;
  }
}

export type Json = null | boolean | number | bigint | F64 | string | Json[] | { [key: string]: Json };

/** Parse JSON text, keeping what kind of number each number is. */
export function parse(text: string): Json {
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at offset ${i} of the JSON text`);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const value = (depth: number): Json => {
    if (depth > 256) fail("nesting too deep");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const out: { [key: string]: Json } = {};
      ws();
      if (text[i] === "}") {
        i++;
        return out;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const k = string();
        ws();
        if (text[i] !== ":") fail("expected `:`");
        i++;
        Object.defineProperty(out, k, { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return out;
        }
        fail("expected `,` or `}`");
      }
    }
    if (c === "[") {
      i++;
      const out: Json[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return out;
      }
      for (;;) {
        out.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return out;
        }
        fail("expected `,` or `]`");
      }
    }
    if (c === '"') return string();
    if (text.startsWith("true", i)) {
      i += 4;
      return true;
    }
    if (text.startsWith("false", i)) {
      i += 5;
      return false;
    }
    if (text.startsWith("null", i)) {
      i += 4;
      return null;
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail("unexpected character");
    i += m[0].length;
    if (m[2] !== undefined || m[3] !== undefined) return new F64(Number(m[0]));
    const n = Number(m[0]);
    return Number.isSafeInteger(n) ? n : BigInt(m[0]);
  };
  const string = (): string => {
    const start = i;
    i++;
    for (;;) {
      const c = text[i];
      if (c === undefined) fail("unterminated string");
      if (c === '"') break;
      if (c === "\\") i++;
      i++;
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("trailing characters");
  return v;
}

/** The shortest round-trip digits of |f| and the decimal exponent of the first digit. */
function digits(f: number): [string, number] {
  const [mantissa, exp] = Math.abs(f).toExponential().split("e") as [string, string];
  const d = mantissa.replace(".", "").replace(/0+$/, "") || "0";
  return [d, Number(exp)];
}

/** An f64 as serde_json writes it: decimal while the point falls within 16 digits before or
 * 5 after the digits, else with an exponent (`1e+16`, `1e-7`). */
export function serdeFloat(f: number): string {
  if (!Number.isFinite(f)) return "null";
  if (f === 0) return Object.is(f, -0) ? "-0.0" : "0.0";
  const sign = f < 0 ? "-" : "";
  const [d, e] = digits(f);
  const length = d.length;
  const exponent = e - length + 1;
  const kk = length + exponent;
  let body: string;
  if (exponent >= 0 && kk <= 16) body = d + "0".repeat(exponent) + ".0";
  else if (kk > 0 && kk <= 16) body = d.slice(0, kk) + "." + d.slice(kk);
  else if (kk > -5 && kk <= 0) body = "0." + "0".repeat(-kk) + d;
  else body = (length === 1 ? d : `${d[0]}.${d.slice(1)}`) + `e${kk > 1 ? "+" : ""}${kk - 1}`;
  return sign + body;
}

/** A float in canonical JSON: integral below 2^53 in plain decimal, else the shorter of Rust's
 * plain and exponent forms. */
function canonicalFloat(f: number): string {
  if (!Number.isFinite(f)) throw new Error(`non-finite number ${f} cannot be hashed`);
  if (Number.isInteger(f) && Math.abs(f) < 2 ** 53) return String(f === 0 ? 0 : f);
  const sign = f < 0 ? "-" : "";
  const [d, e] = digits(f);
  let plain: string;
  if (e >= 0) plain = d.length <= e + 1 ? d + "0".repeat(e + 1 - d.length) : d.slice(0, e + 1) + "." + d.slice(e + 1);
  else plain = "0." + "0".repeat(-e - 1) + d;
  const exp = d[0] + (d.length > 1 ? "." + d.slice(1) : "") + `e${e}`;
  return sign + (exp.length < plain.length ? exp : plain);
}

function str(s: string): string {
  // JSON.stringify escapes exactly what serde_json and promptgate's canonical form escape:
  // `"`, `\`, and control characters (\b \t \n \f \r, else \u00xx in lowercase hex).
  return JSON.stringify(s).replace(/\\u([0-9A-F]{4})/g, (_m, h: string) => `\\u${h.toLowerCase()}`);
}

function scalar(v: Json, float: (f: number) => string): string {
  if (v === null) return "null";
  if (v === true) return "true";
  if (v === false) return "false";
  if (typeof v === "bigint") return v.toString();
  if (v instanceof F64) return float(v.value);
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : float(v);
  if (typeof v === "string") return str(v);
  throw new TypeError("not a JSON scalar");
}

/** Objects whose keys are written in the order given (a Rust struct's fields); every other
 * object is a serde_json map, written with its keys sorted by their UTF-8 bytes. */
const STRUCTS = new WeakSet<object>();

/** Mark `o` as a struct: its keys are written in insertion order. */
export function struct<T extends object>(o: T): T {
  STRUCTS.add(o);
  return o;
}

/** An object's keys in the order serde_json writes them. JavaScript itself would put
 * integer-like keys first, in numeric order. */
function keysOf(o: { [key: string]: Json }): string[] {
  return STRUCTS.has(o) ? Object.keys(o) : Object.keys(o).sort(byBytes);
}

const isObject = (v: Json): v is { [key: string]: Json } =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof F64);

/** `serde_json::to_string`: no whitespace, objects in the order given. */
export function compact(v: Json): string {
  if (Array.isArray(v)) return "[" + v.map(compact).join(",") + "]";
  if (isObject(v)) return "{" + keysOf(v).map((k) => `${str(k)}:${compact(v[k]!)}`).join(",") + "}";
  return scalar(v, serdeFloat);
}

/** `serde_json::to_string_pretty`. */
export function pretty(v: Json, depth = 0): string {
  const pad = "  ".repeat(depth + 1);
  const end = "  ".repeat(depth);
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    return "[\n" + v.map((x) => pad + pretty(x, depth + 1)).join(",\n") + "\n" + end + "]";
  }
  if (isObject(v)) {
    const keys = keysOf(v);
    if (keys.length === 0) return "{}";
    return "{\n" + keys.map((k) => `${pad}${str(k)}: ${pretty(v[k]!, depth + 1)}`).join(",\n") + "\n" + end + "}";
  }
  return scalar(v, serdeFloat);
}

/** UTF-8 byte order, as Rust sorts strings. */
function byBytes(a: string, b: string): number {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return Buffer.compare(x, y);
}

/** A value with every object's keys sorted, as serde_json's map keeps them. */
export function sorted(v: Json): Json {
  if (Array.isArray(v)) return v.map(sorted);
  if (isObject(v)) {
    const out: { [key: string]: Json } = {};
    for (const k of Object.keys(v).sort(byBytes)) {
      Object.defineProperty(out, k, { value: sorted(v[k]!), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return v;
}

/** promptgate's canonical JSON (`crates/core/src/artifact/canonical.rs`). */
export function canonicalJson(v: Json): string {
  if (Array.isArray(v)) return "[" + v.map(canonicalJson).join(",") + "]";
  if (isObject(v)) {
    return "{" + Object.keys(v).sort(byBytes).map((k) => `${str(k)}:${canonicalJson(v[k]!)}`).join(",") + "}";
  }
  return scalar(v, canonicalFloat);
}

/** Lowercase hex SHA-256 of the canonical JSON: a version's identity. */
export function contentHash(v: Json): string {
  return createHash("sha256").update(canonicalJson(v), "utf8").digest("hex");
}

/** The value as plain JavaScript (for templates): floats as numbers, big integers as numbers. */
export function plain(v: Json): unknown {
  if (v instanceof F64) return v.value;
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = plain(v[k]!);
    return out;
  }
  return v;
}
