// A real promptgate repository and a real `promptgate serve` over it.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, createWriteStream, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const BIN = process.env.PROMPTGATE_BIN ?? join(ROOT, "target", "debug", "promptgate");
export const VECTORS = join(ROOT, "clients", "vectors");

const CONFIG = "version: 1\nproviders:\n  openai: { kind: openai, api_key_env: OPENAI_API_KEY }\n";

export function versionYaml(system, temperature) {
  return (
    `model: { provider: openai, name: gpt-4o-mini, temperature: ${temperature} }\n` +
    "variables:\n  question: { type: string }\n" +
    `messages:\n  - role: system\n    content: "${system}"\n` +
    '  - role: user\n    content: "{{ question }}"\n'
  );
}

export class Repo {
  constructor() {
    this.path = mkdtempSync(join(tmpdir(), "pg-ts-"));
    this.write("promptgate.yaml", CONFIG);
    for (const i of [1, 2, 3]) this.write(`prompts/p/v${i}.yaml`, versionYaml(`You are assistant number ${i}.`, (0.1 * i).toFixed(1)));
    this.pg("add", "p");
    this.pg("label", "set", "p", "production", "v1", "--expect", "none", "-m", "first");
  }
  write(rel, text) {
    const p = join(this.path, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  }
  pg(...args) {
    return execFileSync(BIN, ["-C", this.path, ...args], { encoding: "utf8", env: { ...process.env, PROMPTGATE_ACTOR: "node-test" } });
  }
  id(ref) {
    return JSON.parse(this.pg("show", ref, "--json")).version_id;
  }
}

export async function serve(repo) {
  const log = createWriteStream(join(repo.path, "serve.log"));
  const child = spawn(BIN, ["-C", repo.path, "serve", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
  child.stderr.pipe(log);
  const line = await new Promise((ok, fail) => {
    const rl = createInterface({ input: child.stdout });
    rl.once("line", ok);
    child.once("exit", () => fail(new Error(readFileSync(join(repo.path, "serve.log"), "utf8"))));
  });
  const url = "http://" + line.split("http://")[1].split(/\s/)[0];
  return {
    url,
    stop: () =>
      new Promise((ok) => {
        if (child.exitCode !== null) return ok();
        child.once("exit", ok);
        child.kill("SIGTERM");
      }),
  };
}

export async function waitFor(pred, timeoutMs = 5000, everyMs = 5) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (await pred()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return null;
}

export const getJson = async (url) => (await fetch(url)).json();
export const metrics = async (url) => (await fetch(url + "/metrics")).text();
