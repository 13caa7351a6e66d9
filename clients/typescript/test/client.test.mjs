// The TypeScript client against a real `promptgate serve`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Client, NotFound, PromptgateError, RenderError, Unavailable, assign, contentHash, recordOutcome, split } from "../dist/index.js";
import { Repo, getJson, metrics, serve, waitFor } from "./support.mjs";

const tmp = () => mkdtempSync(join(tmpdir(), "pg-ts-lkg-"));

test("a label is fetched once, then served from memory", async () => {
  const repo = new Repo();
  const s = await serve(repo);
  const c = new Client(s.url, { push: false });
  try {
    const p = await c.get("p");
    assert.deepEqual([p.name, p.label, p.versionId], ["p", "production", repo.id("p@v1")]);
    assert.equal(p.messages[0].content, "You are assistant number 1.");
    assert.equal(p.model.temperature, 0.1);
    assert.equal(p.hash, JSON.parse(repo.pg("show", "p@v1", "--json")).hash);
    assert.equal(contentHash(p.artifact), p.hash);
    assert.deepEqual(p.spanAttributes(), { "prompt.name": "p", "prompt.version_id": p.versionId, "prompt.label": "production" });
    await s.stop();
    assert.equal(await c.get("p"), p);
    assert.equal(c.cached("p"), p);
    assert.equal(c.cached("p", { label: "staging" }), undefined);
  } finally {
    c.close();
    await s.stop();
  }
});

test("a version is fetched by id, number or hash once", async () => {
  const repo = new Repo();
  const s = await serve(repo);
  const c = new Client(s.url, { push: false });
  const v2 = repo.id("p@v2");
  const hash = JSON.parse(repo.pg("show", "p@v2", "--json")).hash;
  try {
    for (const sel of [v2, "v2", hash.slice(0, 12)]) {
      const p = await c.getVersion("p", sel);
      assert.deepEqual([p.versionId, p.hash, p.label], [v2, hash, ""], sel);
    }
    await assert.rejects(c.getVersion("p", "v9"), NotFound);
    const p = await c.getVersion("p", "v2");
    await s.stop();
    assert.equal(await c.getVersion("p", "v2"), p);
  } finally {
    c.close();
    await s.stop();
  }
});

test("unknown prompts and labels are not found; revalidation is conditional and sees a move", async () => {
  const repo = new Repo();
  const s = await serve(repo);
  const c = new Client(s.url, { push: false });
  try {
    await assert.rejects(c.get("pp"), NotFound);
    await assert.rejects(c.get("p", { label: "staging" }), (e) => e instanceof NotFound && /staging/.test(e.message));
    const first = await c.get("p");
    await c.refresh();
    assert.equal(await c.get("p"), first, "not modified: the same object");
    assert.match(await metrics(s.url), /status="304"/);
    repo.pg("label", "set", "p", "production", "v2", "--expect", repo.id("p@v1"), "-m", "move");
    assert.ok(await waitFor(async () => (await c.refresh(), (await c.get("p")).versionId === repo.id("p@v2")), 3000));
  } finally {
    c.close();
    await s.stop();
  }
});

test("a CLI label move is seen within a second through the event stream", async () => {
  const repo = new Repo();
  const s = await serve(repo);
  const c = new Client(s.url, { ttl: 3600 });
  try {
    assert.equal((await c.get("p")).versionId, repo.id("p@v1"));
    assert.ok(await waitFor(async () => /promptgate_event_streams 1/.test(await metrics(s.url)), 3000));
    const v2 = repo.id("p@v2");
    repo.pg("label", "set", "p", "production", v2, "--expect", repo.id("p@v1"), "-m", "move");
    const took = await waitFor(async () => c.cached("p")?.versionId === v2, 1000);
    assert.notEqual(took, null, "the move was not seen within 1 s");
  } finally {
    c.close();
    await s.stop();
  }
});

test("the server down: the last version stays served, a fresh client uses the disk copy, a corrupted one is refused", async () => {
  const repo = new Repo();
  const s = await serve(repo);
  const disk = tmp();
  const c = new Client(s.url, { cacheDir: disk, push: false, ttl: 0.05 });
  const v1 = repo.id("p@v1");
  const p = await c.get("p");
  await c.flush();
  await s.stop();
  await new Promise((r) => setTimeout(r, 200)); // refreshes fail meanwhile
  assert.equal((await c.get("p")).versionId, p.versionId);
  c.close();
  assert.deepEqual(readdirSync(disk), ["p@production.json"]);
  const fresh = new Client(s.url, { cacheDir: disk, push: false, timeout: 0.5 });
  assert.equal((await fresh.get("p")).versionId, v1);
  fresh.close();
  const none = new Client(s.url, { push: false, timeout: 0.5 });
  await assert.rejects(none.get("p"), (e) => e instanceof Unavailable && /cacheDir/.test(e.message));
  none.close();
  const copy = join(disk, "p@production.json");
  writeFileSync(copy, readFileSync(copy, "utf8").replace("assistant number 1", "assistant number 9"));
  const tampered = new Client(s.url, { cacheDir: disk, push: false, timeout: 0.5 });
  await assert.rejects(tampered.get("p"), (e) => e instanceof Unavailable && /no usable last-known-good copy/.test(e.message));
  tampered.close();
});

test("a prompt the server no longer has stops being served", async () => {
  const repo = new Repo();
  const s = await serve(repo);
  const disk = tmp();
  const c = new Client(s.url, { cacheDir: disk, push: false });
  try {
    await c.get("p");
    await c.flush();
    rmSync(join(repo.path, "prompts", "p"), { recursive: true });
    assert.ok(await waitFor(async () => (await getJson(s.url + "/v1/prompts")).prompts.length === 0, 8000));
    await c.refresh();
    assert.equal(c.cached("p"), undefined);
    await assert.rejects(c.get("p"), NotFound);
    await c.flush();
    assert.equal(existsSync(join(disk, "p@production.json")), false);
  } finally {
    c.close();
    await s.stop();
  }
});

test("routing matches the server's and the weights", async () => {
  const repo = new Repo();
  const [v1, v3] = [repo.id("p@v1"), repo.id("p@v3")];
  repo.pg("label", "set", "p", "production", `${v3}:10,${v1}:90`, "--expect", v1, "-m", "canary");
  const s = await serve(repo);
  const c = new Client(s.url, { push: false });
  try {
    for (let i = 0; i < 200; i++) {
      const key = `user-${i}`;
      const want = (await getJson(`${s.url}/v1/prompts/p?label=production&key=${key}`)).version_id;
      assert.equal((await c.get("p", { routingKey: key })).versionId, want, key);
    }
    assert.equal((await c.get("p")).versionId, v1);
  } finally {
    c.close();
    await s.stop();
  }
  const target = split({ [v1]: 90, [v3]: 10 });
  let canary = 0;
  for (let i = 0; i < 100_000; i++) if (assign(target, "production", `key-${i}`) === v3) canary++;
  assert.ok(Math.abs(canary / 100_000 - 0.1) < 0.01, String(canary));
  const grown = split({ [v1]: 50, [v3]: 50 });
  for (let i = 0; i < 10_000; i++) {
    const k = `key-${i}`;
    if (assign(target, "production", k) === v3) assert.equal(assign(grown, "production", k), v3);
  }
});

test("a fetched prompt renders as the CLI does, and for each SDK", async () => {
  const repo = new Repo();
  const s = await serve(repo);
  const c = new Client(s.url, { push: false });
  let p;
  try {
    p = await c.get("p");
  } finally {
    c.close();
    await s.stop();
  }
  const cli = repo.pg("render", "p@production", "--var", "question=Où est ma facture ?");
  assert.equal(p.renderJson({ question: "Où est ma facture ?" }) + "\n", cli);
  assert.throws(() => p.render(), (e) => e instanceof RenderError && /missing variable `question`/.test(e.message));
  assert.throws(() => p.render({ question: 3 }), /must be a string, got a number/);
  assert.throws(() => p.render({ question: "x", questoin: "y" }), /did you mean `question`/);
  const o = p.toOpenAI({ question: "hi" });
  assert.deepEqual([o.model, o.temperature, o.messages[1]], ["gpt-4o-mini", 0.1, { role: "user", content: "hi" }]);
  const a = p.toAnthropic({ question: "hi" });
  assert.equal(a.system, "You are assistant number 1.");
  assert.deepEqual(a.messages, [{ role: "user", content: "hi" }]);
  assert.equal(a.max_tokens, 1024);
  assert.equal("seed" in a, false);
});

test("a bundle serves every label without a server", async () => {
  const repo = new Repo();
  const out = join(tmp(), "prompts.json");
  repo.pg("bundle", "--out", out);
  const c = await Client.fromBundle(out);
  assert.equal((await c.get("p")).versionId, repo.id("p@v1"));
  writeFileSync(out, readFileSync(out, "utf8").replace("assistant number 1", "assistant number 7"));
  await assert.rejects(Client.fromBundle(out), /digest/);
});

test("outcomes go on the caller's span, without OpenTelemetry", async () => {
  const repo = new Repo();
  const out = join(tmp(), "b.json");
  repo.pg("bundle", "--out", out);
  const p = await (await Client.fromBundle(out)).get("p");
  const seen = {};
  const span = { setAttribute: (k, v) => (seen[k] = v) };
  const attrs = await recordOutcome(p, { tool_call_ok: true, feedback_score: 0.8 }, span);
  assert.deepEqual(seen, attrs);
  assert.deepEqual(attrs, {
    "prompt.name": "p",
    "prompt.version_id": p.versionId,
    "prompt.label": "production",
    "app.tool_call_ok": 1,
    "app.feedback_score": 0.8,
  });
  assert.equal((await recordOutcome(p, { feedback_score: 1 }))["app.feedback_score"], 1);
  await assert.rejects(recordOutcome(p, { latency: NaN }, span), PromptgateError);
});

test("a URL with credentials is refused without repeating them", () => {
  assert.throws(
    () => new Client("http://ci:s3cret-pw@127.0.0.1:7070", { push: false }),
    (e) => e instanceof PromptgateError && !e.message.includes("s3cret-pw") && /token/.test(e.message),
  );
});
