/**
 * Sticky canary routing, exactly as the server assigns it (`crates/registry/src/target.rs`):
 * SHA-256 of `label NUL key`, the first 8 bytes big-endian mod 10,000, and the versions of a
 * split take consecutive ranges of buckets, newest first.
 */

import { createHash } from "node:crypto";

export const BUCKETS = 10_000;

/** One version id, or a split as [version id, percent] pairs, newest first. */
export type Target = string | Array<[string, number]>;

function number(id: string): number {
  const m = /^v(\d+)/.exec(id);
  return m ? Number(m[1]) : 0;
}

/** A split from the server's JSON (`{version_id: percent}`), in its canonical order. */
export function split(weights: Record<string, unknown>): Target {
  const parts = Object.entries(weights).map(([v, w]) => [v, Number(w)] as [string, number]);
  parts.sort((a, b) => number(b[0]) - number(a[0]) || (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0));
  return parts.length === 1 ? parts[0]![0] : parts;
}

export function bucket(label: string, key: string): number {
  const d = createHash("sha256").update(label, "utf8").update(Buffer.from([0])).update(key, "utf8").digest();
  return Number(d.readBigUInt64BE(0) % BigInt(BUCKETS));
}

/** What a caller without a routing key gets: the largest weight, the oldest on a tie. */
export function primary(target: Target): string {
  if (typeof target === "string") return target;
  let best = target[0]!;
  for (const p of target.slice(1)) if (p[1] >= best[1]) best = p;
  return best[0];
}

/** The version `routingKey` is served under `label`. */
export function assign(target: Target, label: string, routingKey?: string | null): string {
  if (typeof target === "string") return target;
  if (routingKey === undefined || routingKey === null) return primary(target);
  const b = bucket(label, routingKey);
  let upper = 0;
  for (const [v, w] of target) {
    upper += w * (BUCKETS / 100);
    if (b < upper) return v;
  }
  return target[target.length - 1]![0];
}

export function versions(target: Target): string[] {
  return typeof target === "string" ? [target] : target.map(([v]) => v);
}
