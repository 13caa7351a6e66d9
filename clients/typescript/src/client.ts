/**
 * The runtime client: prompts by label from memory. A label is fetched once (within
 * `timeout`), then served without a network call. Every `ttl` seconds each cached label is
 * revalidated with `If-None-Match` (a `304` costs no body), and the server's event stream
 * (`/v1/events`) refetches a label as soon as it moves; after a break the stream resumes with
 * `Last-Event-ID` and everything is revalidated, as on a `reset`. On any error the client keeps
 * serving what it has. With `cacheDir`, each label's last-known-good copy is written to disk
 * (atomically, off the caller's path) and used when the server cannot be reached at start-up;
 * a copy whose artifacts do not match their hashes is refused. A prompt or label the server
 * says is gone stops being served at its next confirmation.
 */

import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

import { type Json, compact, contentHash, parse, plain, pretty } from "./json.js";
import { Compiled } from "./render.js";
import { type Target, assign, split, versions } from "./routing.js";

export class PromptgateError extends Error {
  override name = "PromptgateError";
}
/** The server says the prompt, label or version does not exist. */
export class NotFound extends PromptgateError {
  override name = "NotFound";
}
/** Nothing to serve: the server cannot be reached and there is no usable copy on disk. */
export class Unavailable extends PromptgateError {
  override name = "Unavailable";
}

type Obj = { [key: string]: Json };

/** One version of a prompt, as a label serves it to a caller. */
export class Prompt {
  #compiled: Compiled | undefined;

  constructor(
    readonly name: string,
    readonly label: string,
    readonly versionId: string,
    readonly hash: string,
    /** The artifact as the server sends it (numbers kept as promptgate wrote them). */
    readonly artifact: Obj,
  ) {}

  get messages(): Array<{ role: string; content: string }> {
    return plain(this.artifact["messages"] ?? []) as Array<{ role: string; content: string }>;
  }
  get model(): Record<string, unknown> {
    return plain(this.artifact["model"] ?? {}) as Record<string, unknown>;
  }
  get tools(): unknown[] {
    return plain(this.artifact["tools"] ?? []) as unknown[];
  }
  get outputSchema(): unknown {
    return plain(this.artifact["output_schema"] ?? null);
  }

  /** The provider-neutral request, as `promptgate render` makes it. Throws `RenderError`
   * naming a missing, mistyped or unknown variable. */
  render(variables: Record<string, unknown> = {}): Record<string, unknown> {
    return plain(this.#request(variables)) as Record<string, unknown>;
  }

  /** The request as `promptgate render` prints it, byte for byte. */
  renderJson(variables: Record<string, unknown> = {}): string {
    return pretty(this.#request(variables));
  }

  #request(variables: Record<string, unknown>): Obj {
    this.#compiled ??= new Compiled(this.artifact);
    return this.#compiled.request(this.name, this.versionId, variables);
  }

  /** The body of `openai.chat.completions.create(…)`, as promptgate's OpenAI provider sends it. */
  toOpenAI(variables: Record<string, unknown> = {}): Record<string, unknown> {
    const req = this.render(variables) as any;
    const body: Record<string, unknown> = { model: req.model, messages: req.messages, ...req.params };
    if (req.tools.length) body["tools"] = req.tools.map((t: any) => ({ type: "function", function: t }));
    const rf = req.response_format;
    if (rf) body["response_format"] = { type: "json_schema", json_schema: { name: rf.name, schema: rf.schema, strict: rf.strict } };
    return body;
  }

  /** The body of `anthropic.messages.create(…)`, as promptgate's Anthropic provider sends it:
   * system messages joined into `system` (with the output schema as an instruction),
   * `max_tokens` 1024 unless set, `stop` as `stop_sequences`, no `seed`. */
  toAnthropic(variables: Record<string, unknown> = {}): Record<string, unknown> {
    const raw = this.#request(variables);
    const req = plain(raw) as any;
    let system = req.messages.filter((m: any) => m.role === "system").map((m: any) => m.content).join("\n\n");
    const rf = (raw["response_format"] ?? null) as Obj | null;
    if (rf) {
      system += (system ? "\n\n" : "") + "Respond with only a JSON value that satisfies this JSON Schema:\n" + compact(rf["schema"]!);
    }
    const body: Record<string, unknown> = { model: req.model };
    if (system) body["system"] = system;
    body["messages"] = req.messages.filter((m: any) => m.role !== "system");
    for (const [k, v] of Object.entries(req.params as Record<string, unknown>)) {
      if (k === "stop") body["stop_sequences"] = v;
      else if (k !== "seed") body[k] = v;
    }
    body["max_tokens"] ??= 1024;
    if (req.tools.length) {
      body["tools"] = req.tools.map((t: any) => ({ name: t.name, input_schema: t.parameters, ...(t.description !== undefined ? { description: t.description } : {}) }));
    }
    return body;
  }

  /** The attributes to put on the caller's own spans. */
  spanAttributes(): Record<string, string> {
    return { "prompt.name": this.name, "prompt.version_id": this.versionId, "prompt.label": this.label };
  }
}

class LabelState {
  constructor(
    readonly target: Target,
    readonly etag: string | null,
    readonly versions: Map<string, Prompt>,
  ) {}

  serve(label: string, routingKey?: string | null): Prompt | undefined {
    return this.versions.get(assign(this.target, label, routingKey));
  }

  /** The Rust client's file format: either client reads the other's copies. */
  toJson(): Json {
    const target: Json = typeof this.target === "string" ? this.target : Object.fromEntries(this.target);
    const vs: Obj = {};
    for (const [id, p] of this.versions) {
      vs[id] = { name: p.name, label: p.label, version_id: p.versionId, hash: p.hash, artifact: p.artifact };
    }
    return { target, etag: this.etag, versions: vs };
  }

  static fromJson(v: Obj): LabelState {
    const t = v["target"]!;
    const target = typeof t === "string" ? t : split(t as Obj);
    const vs = new Map<string, Prompt>();
    for (const [id, p] of Object.entries(v["versions"] as Obj)) {
      const o = p as Obj;
      vs.set(id, new Prompt(o["name"] as string, o["label"] as string, o["version_id"] as string, o["hash"] as string, o["artifact"] as Obj));
    }
    return new LabelState(target, (v["etag"] as string | null) ?? null, vs);
  }
}

export interface ClientOptions {
  /** A bearer token (read scope is enough). */
  token?: string;
  /** Seconds between background revalidations (default 30). */
  ttl?: number;
  /** Where last-known-good copies are kept (none by default). */
  cacheDir?: string;
  /** Seconds a request to the server may take (default 2). */
  timeout?: number;
  /** Follow the server's event stream for instant invalidation (default true). */
  push?: boolean;
}

export interface GetOptions {
  label?: string;
  /** A user or session id, for a label that splits its traffic. */
  routingKey?: string | null;
}

const quote = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export class Client {
  readonly #base: string;
  readonly #token: string | undefined;
  readonly #timeout: number;
  readonly #cacheDir: string | undefined;
  readonly #entries = new Map<string, LabelState>();
  readonly #versions = new Map<string, Prompt>();
  #disk: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #events: AbortController | undefined;
  #closed = false;

  /** `url`: the server; `null` for none (a client over a bundle: no refresh, no events). */
  constructor(url: string | null, options: ClientOptions = {}) {
    this.#base = "";
    this.#token = options.token;
    this.#timeout = (options.timeout ?? 2) * 1000;
    this.#cacheDir = options.cacheDir;
    if (url === null) return;
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new PromptgateError(`not a server URL: ${JSON.stringify(url)} (e.g. http://127.0.0.1:7070)`);
    }
    if (u.username || u.password) {
      // A secret in the URL would be repeated by every message that names the server.
      throw new PromptgateError("the server URL carries credentials: pass the token as `token`");
    }
    this.#base = u.toString().replace(/\/$/, "");
    this.#timer = setInterval(() => void this.refresh(), (options.ttl ?? 30) * 1000);
    this.#timer.unref();
    if (options.push ?? true) void this.#eventLoop();
  }

  /** The version `label` (default `production`) of `name` serves to `routingKey`: from memory
   * when cached, else fetched, and if the server cannot be reached, the copy on disk. */
  async get(name: string, options: GetOptions = {}): Promise<Prompt> {
    const label = options.label ?? "production";
    const hit = this.#entries.get(`${name}\0${label}`)?.serve(label, options.routingKey);
    if (hit) return hit;
    let state: LabelState;
    try {
      state = (await this.#fetch(name, label, null))!;
    } catch (e) {
      if (e instanceof NotFound) throw e;
      const disk = await this.#loadDisk(name, label);
      if (!disk) {
        throw new Unavailable(
          `${(e as Error).message}; and there is no usable last-known-good copy of \`${name}@${label}\` on disk` +
            (this.#cacheDir ? "" : " (pass cacheDir to keep one)"),
        );
      }
      state = disk;
    }
    this.#entries.set(`${name}\0${label}`, state);
    const p = state.serve(label, options.routingKey);
    if (!p) throw new PromptgateError(`\`${name}@${label}\` serves a version that was not fetched`);
    return p;
  }

  /** One version by id (`v3-9f2c1ab`), number (`v3`) or hash prefix. Versions are immutable:
   * fetched once (hash verified), then served from memory forever. */
  async getVersion(name: string, version: string): Promise<Prompt> {
    const key = `${name}\0${version}`;
    const hit = this.#versions.get(key);
    if (hit) return hit;
    const got = await this.#getJson(`/v1/prompts/${quote(name)}/versions/${quote(version)}`, null);
    const b = got![0];
    const p = new Prompt(name, "", b["version_id"] as string, b["hash"] as string, b["artifact"] as Obj);
    this.#versions.set(key, p);
    return p;
  }

  /** From memory only; `undefined` if this label was never fetched (or is gone). */
  cached(name: string, options: GetOptions = {}): Prompt | undefined {
    const label = options.label ?? "production";
    return this.#entries.get(`${name}\0${label}`)?.serve(label, options.routingKey);
  }

  /** Revalidate every cached label now (what the background refresh does every TTL). */
  async refresh(): Promise<void> {
    for (const [key, state] of [...this.#entries]) {
      const [name, label] = key.split("\0") as [string, string];
      await this.#refreshOne(name, label, state.etag);
    }
  }

  /** Wait until every last-known-good copy queued so far is on disk. */
  async flush(): Promise<void> {
    await this.#disk;
  }

  /** Stop the background refresh and the event stream (the cache stays readable). */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#events?.abort();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Every label of every prompt of a bundle file (`promptgate bundle`): no server, no
   * refresh; its digest and every version's hash verified. */
  static async fromBundle(path: string): Promise<Client> {
    const b = parse(await readFile(path, "utf8")) as Obj;
    if (Number(b["bundle_version"]) !== 1) throw new PromptgateError(`${path}: not a promptgate bundle of version 1`);
    if (contentHash(b["prompts"] ?? null) !== b["digest"]) throw new PromptgateError(`${path}: the bundle's digest does not match its content`);
    const c = new Client(null);
    for (const [name, d] of Object.entries(b["prompts"] as Obj)) {
      const doc = d as Obj;
      const byId = new Map<string, Obj>();
      for (const v of doc["versions"] as Obj[]) {
        if (contentHash(v["artifact"]!) !== v["hash"]) throw new PromptgateError(`${path}: \`${name}@${v["version_id"]}\` does not match its hash`);
        byId.set(v["version_id"] as string, v);
      }
      for (const [label, t] of Object.entries((doc["labels"] ?? {}) as Obj)) {
        const target = typeof t === "string" ? t : split(t as Obj);
        const vs = new Map<string, Prompt>();
        for (const id of versions(target)) {
          const v = byId.get(id);
          if (v) vs.set(id, new Prompt(name, label, id, v["hash"] as string, v["artifact"] as Obj));
        }
        c.#entries.set(`${name}\0${label}`, new LabelState(target, null, vs));
      }
    }
    return c;
  }

  // HTTP.

  #headers(): Record<string, string> {
    const h: Record<string, string> = { accept: "application/json", "user-agent": "promptgate-typescript/0.1.0" };
    if (this.#token) h["authorization"] = `Bearer ${this.#token}`;
    return h;
  }

  /** `null`: not modified. */
  async #getJson(path: string, etag: string | null): Promise<[Obj, string | null] | null> {
    const headers = this.#headers();
    if (etag) headers["if-none-match"] = etag;
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.#base + path, { headers, signal: AbortSignal.timeout(this.#timeout) });
      text = await res.text();
    } catch (e) {
      throw new PromptgateError(`cannot reach the registry at ${this.#base}: ${(e as Error).message}`);
    }
    if (res.status === 304) return null;
    if (res.status === 404) {
      let msg = text;
      try {
        msg = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {
        /* the text itself */
      }
      throw new NotFound(msg);
    }
    if (res.status !== 200) throw new PromptgateError(`the registry answered ${res.status}: ${text.trim()}`);
    let body: Obj;
    try {
      body = parse(text) as Obj;
      if (typeof body["version_id"] !== "string" || typeof body["hash"] !== "string" || !body["artifact"]) throw new Error("missing fields");
    } catch (e) {
      throw new PromptgateError(`the registry's answer is not a version: ${(e as Error).message}`);
    }
    if (contentHash(body["artifact"]!) !== body["hash"]) throw new PromptgateError(`\`${body["name"]}@${body["version_id"]}\` does not match its hash`);
    return [body, res.headers.get("etag")];
  }

  async #fetch(name: string, label: string, etag: string | null): Promise<LabelState | null> {
    const got = await this.#getJson(`/v1/prompts/${quote(name)}?label=${quote(label)}`, etag);
    if (!got) return null;
    const [body, newEtag] = got;
    const s = body["split"];
    const target: Target = s && typeof s === "object" ? split(s as Obj) : (body["version_id"] as string);
    const prompt = (b: Obj) => new Prompt(name, label, b["version_id"] as string, b["hash"] as string, b["artifact"] as Obj);
    const vs = new Map<string, Prompt>([[body["version_id"] as string, prompt(body)]]);
    for (const id of versions(target)) {
      if (vs.has(id)) continue;
      const more = await this.#getJson(`/v1/prompts/${quote(name)}/versions/${quote(id)}`, null);
      if (more) vs.set(id, prompt(more[0]));
    }
    const state = new LabelState(target, newEtag, vs);
    this.#saveDisk(name, label, state);
    return state;
  }

  async #refreshOne(name: string, label: string, etag: string | null): Promise<void> {
    try {
      const state = await this.#fetch(name, label, etag);
      if (state) this.#entries.set(`${name}\0${label}`, state);
    } catch (e) {
      if (e instanceof NotFound) {
        // The server confirms it is gone: stop serving it, here and on disk.
        this.#entries.delete(`${name}\0${label}`);
        this.#removeDisk(name, label);
      }
      // Anything else: keep serving what we have.
    }
  }

  // Disk.

  #diskPath(name: string, label: string): string | undefined {
    return this.#cacheDir === undefined ? undefined : join(this.#cacheDir, `${quote(name)}@${quote(label)}.json`);
  }

  #saveDisk(name: string, label: string, state: LabelState): void {
    const path = this.#diskPath(name, label);
    if (!path) return;
    const data = compact(state.toJson());
    // Written in order, one after the other, never on the caller's path.
    this.#disk = this.#disk.then(async () => {
      try {
        await mkdir(dirname(path), { recursive: true });
        const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
        const f = await open(tmp, "w");
        try {
          await f.writeFile(data, "utf8");
          await f.sync();
        } finally {
          await f.close();
        }
        await rename(tmp, path);
      } catch {
        /* a copy not written costs a fallback later, nothing more */
      }
    });
  }

  #removeDisk(name: string, label: string): void {
    const path = this.#diskPath(name, label);
    if (path) this.#disk = this.#disk.then(() => rm(path, { force: true }).catch(() => {}));
  }

  async #loadDisk(name: string, label: string): Promise<LabelState | undefined> {
    const path = this.#diskPath(name, label);
    if (!path) return undefined;
    try {
      const state = LabelState.fromJson(parse(await readFile(path, "utf8")) as Obj);
      // A copy whose artifacts do not match their hashes is not good.
      for (const p of state.versions.values()) if (contentHash(p.artifact) !== p.hash) return undefined;
      return state;
    } catch {
      return undefined;
    }
  }

  // The event stream.

  async #eventLoop(): Promise<void> {
    let lastId: string | null = null;
    let delay = 100;
    while (!this.#closed) {
      const ctl = new AbortController();
      this.#events = ctl;
      try {
        const headers = this.#headers();
        headers["accept"] = "text/event-stream";
        if (lastId) headers["last-event-id"] = lastId;
        const res = await fetch(`${this.#base}/v1/events`, { headers, signal: ctl.signal });
        if (res.status === 200 && res.body) {
          delay = 100;
          if (lastId) await this.refresh(); // anything missed while disconnected
          let buf = "";
          const decoder = new TextDecoder();
          for await (const chunk of res.body) {
            buf += decoder.decode(chunk as Uint8Array, { stream: true });
            let end: number;
            while ((end = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, end);
              buf = buf.slice(end + 2);
              let kind = "message";
              const data: string[] = [];
              for (const line of block.split("\n")) {
                if (line.startsWith(":")) continue;
                const i = line.indexOf(":");
                const field = i < 0 ? line : line.slice(0, i);
                let value = i < 0 ? "" : line.slice(i + 1);
                if (value.startsWith(" ")) value = value.slice(1);
                if (field === "event") kind = value;
                else if (field === "data") data.push(value);
                else if (field === "id") lastId = value;
              }
              if (kind === "label") await this.#onLabel(data.join("\n"));
              else if (kind === "reset") await this.refresh();
            }
          }
        }
      } catch {
        /* reconnect */
      }
      if (this.#closed) return;
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, 5000);
    }
  }

  async #onLabel(data: string): Promise<void> {
    let v: { prompt?: string; label?: string };
    try {
      v = JSON.parse(data);
    } catch {
      return;
    }
    if (v.prompt !== undefined && v.label !== undefined && this.#entries.has(`${v.prompt}\0${v.label}`)) {
      await this.#refreshOne(v.prompt, v.label, null);
    }
  }
}
