// `get` on a cache hit (`npm run bench` in clients/typescript): no network call.
// The client is filled from a bundle the promptgate binary writes of the bundled example.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Client } from "./dist/index.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin =
  process.env.PROMPTGATE_BIN ??
  ["release", "debug"].map((k) => join(ROOT, "target", k, "promptgate")).find(existsSync);
if (!bin) throw new Error("build promptgate first (cargo build)");
const out = join(mkdtempSync(join(tmpdir(), "pg-bench-")), "bundle.json");
execFileSync(bin, ["-C", join(ROOT, "examples", "support"), "bundle", "--out", out]);
const c = await Client.fromBundle(out);

const N = 2_000_000;
function time(what, f) {
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) f();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / N);
  }
  console.log(`${what}: ${best.toFixed(0)} ns per call (best of 5 × ${N.toLocaleString("en")})`);
}
time("cached(support_agent)", () => c.cached("support_agent"));
time("cached(support_agent, routingKey)", () => c.cached("support_agent", { routingKey: "user-42" }));
time("get(support_agent), the promise alone", () => c.get("support_agent"));
// get() is async: measure it as a caller awaits it.
let best = Infinity;
for (let r = 0; r < 5; r++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await c.get("support_agent");
  best = Math.min(best, Number(process.hrtime.bigint() - t0) / N);
}
console.log(`await get(support_agent) in a loop: ${best.toFixed(0)} ns per call`);
