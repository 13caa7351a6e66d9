// The shared vectors (clients/vectors/), which the Rust and Python tests check too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { Prompt, assign, canonicalJson, contentHash, parse, split } from "../dist/index.js";
import { VECTORS } from "./support.mjs";

const load = (name) => parse(readFileSync(join(VECTORS, name), "utf8")).vectors;

test("canonical JSON and content hashes", () => {
  const vectors = load("canonical.json");
  assert.ok(vectors.length >= 20);
  for (const v of vectors) {
    const value = parse(v.json);
    assert.equal(canonicalJson(value), v.canonical, v.json);
    assert.equal(contentHash(value), v.sha256, v.json);
  }
});

test("routing", () => {
  const vectors = load("routing.json");
  assert.ok(vectors.length >= 50);
  for (const v of vectors) {
    assert.equal(assign(split(v.weights), v.label, v.key), v.version, JSON.stringify(v));
  }
});

test("rendering is byte-identical to promptgate render", () => {
  const vectors = load("render.json");
  assert.ok(vectors.length >= 5);
  for (const v of vectors) {
    assert.equal(contentHash(v.artifact), v.hash, v.prompt);
    const p = new Prompt(v.prompt, "production", v.version_id, v.hash, v.artifact);
    const vars = JSON.parse(JSON.stringify(v.variables, (_k, x) => (typeof x === "object" && x?.constructor?.name === "F64" ? x.value : x)));
    assert.equal(p.renderJson(vars) + "\n", v.rendered, v.prompt);
  }
});

test("conditional fetches against a real server", async () => {
  const { Repo, serve } = await import("./support.mjs");
  const repo = new Repo();
  const s = await serve(repo);
  try {
    const hash = JSON.parse(repo.pg("show", "p@v1", "--json")).hash;
    for (const v of load("etag.json")) {
      const header = v.if_none_match.replaceAll("{hash}", hash).replaceAll("{prefix}", hash.slice(0, 12));
      const res = await fetch(`${s.url}/v1/prompts/p?label=production`, { headers: header ? { "if-none-match": header } : {} });
      await res.arrayBuffer();
      assert.equal(res.status, Number(v.status), header);
    }
  } finally {
    await s.stop();
  }
});
