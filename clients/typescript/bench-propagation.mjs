// Label moves (by the CLI) → `get` returning the new version, through a real `promptgate serve`
// and its event stream (`npm run build && node bench-propagation.mjs`).
import { Client } from "./dist/index.js";
import { Repo, serve } from "./test/support.mjs";

const repo = new Repo();
const ids = [repo.id("p@v1"), repo.id("p@v2")];
const s = await serve(repo);
const c = new Client(s.url, { ttl: 3600 });
await c.get("p");
await new Promise((r) => setTimeout(r, 500)); // the event stream is open
const took = [];
for (let i = 0; i < 100; i++) {
  const [want, was] = [ids[(i + 1) % 2], ids[i % 2]];
  repo.pg("label", "set", "p", "production", want, "--expect", was, "-m", "bench");
  const t0 = performance.now();
  while (c.cached("p")?.versionId !== want) await new Promise((r) => setTimeout(r, 0.2));
  took.push(performance.now() - t0);
}
c.close();
await s.stop();
took.sort((a, b) => a - b);
const q = (p) => took[Math.min(took.length - 1, Math.floor(p * took.length))];
console.log(`move → get over 100 moves: p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, max ${took.at(-1).toFixed(1)} ms`);
