/**
 * promptgate's runtime client for TypeScript and JavaScript (Node ≥ 20): prompts by label,
 * from memory.
 *
 * ```ts
 * import { Client } from "promptgate";
 * const client = new Client("http://127.0.0.1:7070", { cacheDir: ".promptgate/client" });
 * const p = await client.get("support_agent", { label: "production", routingKey: "user-42" });
 * const request = p.render({ question: "Where is my invoice?" });
 * ```
 */

export { Client, NotFound, Prompt, PromptgateError, Unavailable } from "./client.js";
export type { ClientOptions, GetOptions } from "./client.js";
export { F64, canonicalJson, contentHash, parse } from "./json.js";
export { RenderError } from "./render.js";
export { recordOutcome } from "./outcome.js";
export type { SpanLike } from "./outcome.js";
export { assign, bucket, split } from "./routing.js";
