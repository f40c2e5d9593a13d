/** The management client: `sync` the function set and `send` events to the engine. */
import { DurableError } from "./errors.js";
import { index, repr, type DurableFunction } from "./function.js";
import { newNonce, sign, signV2, V1_HEADER, V2_HEADER, verify, verifyV2 } from "./signing.js";

/** Options of {@link DurableClient}. */
export interface DurableClientOptions {
  /** The engine's URL, e.g. `http://localhost:3030`. */
  baseUrl: string;
  /** The workspace's app id (from the dashboard or `POST /api/apps`). */
  appId: string;
  /** The workspace's signing key: signs every request and verifies every answer. */
  signingKey: string;
  /**
   * While the workspace's key is rotated: the other key, also accepted on the engine's answers (never
   * used to sign). Drop it once the old key is removed.
   */
  signingKeyFallback?: string | undefined;
  /** Where the engine reaches the handler made by `serve`; `sync` needs it. */
  appUrl?: string | undefined;
  /** Per-request timeout in milliseconds (default 10000). */
  timeoutMs?: number | undefined;
  /** The clock that the engine's answers must be fresh by, epoch milliseconds (default `Date.now`); tests move it. */
  now?: (() => number) | undefined;
}

/**
 * An event to send. `id` makes the send idempotent for 24 h; `ts` is epoch milliseconds;
 * `idempotencyKey` (at most 256 characters) starts at most one run per key per 24 h in each function
 * it triggers that has no `idempotency` option of its own.
 */
export interface EventPayload<TData extends Record<string, unknown> = Record<string, unknown>> {
  name: string;
  data?: TData;
  id?: string;
  ts?: number;
  idempotencyKey?: string;
}

/** An event as `POST /e` and the `send` op carry it: `data` defaults to `{}`, unset fields are left out. */
export interface WireEvent {
  name: string;
  data: Record<string, unknown>;
  id?: string;
  ts?: number;
  idempotencyKey?: string;
}

const MAX_IDEMPOTENCY_KEY = 256;

/** The wire form of `event`, or an `Error` made by `fail` (from what is wrong) when its name or key is bad. */
export function wireEvent(event: EventPayload, fail: (problem: string) => Error): WireEvent {
  if (typeof event?.name !== "string" || !event.name) throw fail(`event name must be a non-empty string, got ${repr(event?.name)}`);
  const { name, data = {}, id, ts, idempotencyKey } = event;
  if (idempotencyKey !== undefined && (typeof idempotencyKey !== "string" || !idempotencyKey || idempotencyKey.length > MAX_IDEMPOTENCY_KEY))
    throw fail(`idempotencyKey must be a non-empty string of at most ${MAX_IDEMPOTENCY_KEY} characters, got ${repr(idempotencyKey)}`);
  return {
    name,
    data,
    ...(id === undefined ? {} : { id }),
    ...(ts === undefined ? {} : { ts }),
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  };
}

/**
 * Talks to the engine as one app. Every request carries `x-durable-app` and is signed twice:
 * `x-durable-signature-v2` (sender `app`, a fresh nonce) and `x-durable-signature` (v1, for engines
 * that only speak it). An answer carrying v2 must be signed by the engine, fresh, and bound to this
 * request's nonce; an answer carrying only v1 (an older engine) must match v1.
 * Every method rejects with a {@link DurableError} when the engine is unreachable, answers non-2xx
 * (the message carries the engine's `error`), or answers without a valid signature.
 */
export class DurableClient {
  readonly baseUrl: string;
  readonly appId: string;
  readonly appUrl: string | undefined;
  readonly timeoutMs: number;
  readonly #key: string;
  readonly #keys: readonly string[];
  readonly #now: () => number;

  constructor(options: DurableClientOptions) {
    for (const field of ["baseUrl", "appId", "signingKey"] as const)
      if (typeof options?.[field] !== "string" || !options[field])
        throw new Error(`DurableClient: ${field} must be a non-empty string, got ${repr(options?.[field])}`);
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.appId = options.appId;
    const fallback = options.signingKeyFallback;
    if (fallback !== undefined && (typeof fallback !== "string" || !fallback))
      throw new Error(`DurableClient: signingKeyFallback must be a non-empty string when given, got ${repr(fallback)}`);
    if (options.now !== undefined && typeof options.now !== "function") throw new Error("DurableClient: now must be a function returning epoch milliseconds");
    this.#key = options.signingKey;
    this.#keys = fallback === undefined ? [options.signingKey] : [options.signingKey, fallback];
    this.#now = options.now ?? (() => Date.now()); // looked up at each call: a test may replace Date
    this.appUrl = options.appUrl;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** Make `functions` the app's whole function set in the engine; resolves with the engine's answer. */
  async sync(functions: Iterable<DurableFunction<any, any>>): Promise<unknown> {
    if (!this.appUrl) throw new Error("DurableClient.sync needs appUrl: where the engine reaches your app");
    const definitions = [...index(functions).values()].map((fn) => fn.definition);
    return this.post("/fn/sync", { url: this.appUrl, functions: definitions });
  }

  /** Send one event, or a list all-or-nothing; resolves with their ids in order. */
  async send(events: EventPayload | readonly EventPayload[]): Promise<string[]> {
    const list = Array.isArray(events);
    const wire = (list ? events : [events]).map((event: EventPayload) => wireEvent(event, (problem) => new Error(problem)));
    const answer = await this.post("/e", list ? wire : wire[0]);
    const ids = (answer as { ids?: unknown })?.ids;
    if (!Array.isArray(ids)) throw new DurableError(`unexpected answer from the engine: ${repr(answer)}`);
    return ids.map(String);
  }

  private async post(path: string, payload: unknown): Promise<unknown> {
    const body = Buffer.from(JSON.stringify(payload));
    const nonce = newNonce(); // the engine's answer must carry it as r
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, {
        method: "POST",
        body,
        headers: {
          "content-type": "application/json",
          "x-durable-app": this.appId,
          [V2_HEADER]: signV2(body, this.#key, { sender: "app", t: this.#now(), n: nonce }),
          [V1_HEADER]: sign(body, this.#key),
          "user-agent": "durable-sdk-typescript",
        },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const cause = (error as { cause?: Error }).cause?.message ?? (error as Error).message;
      throw new DurableError(`POST ${path}: cannot reach the engine at ${this.baseUrl}: ${cause}`);
    }
    const answer = Buffer.from(await response.arrayBuffer());
    if (!response.ok) throw new DurableError(`POST ${path}: ${response.status} ${errorMessage(answer)}`, response.status);
    const problem = this.#checkAnswer(answer, response.headers, nonce);
    if (problem) throw new DurableError(`POST ${path}: the answer is refused: ${problem}`, response.status);
    try {
      return JSON.parse(answer.toString("utf8"));
    } catch (error) {
      throw new DurableError(`POST ${path}: the answer is not JSON (${(error as Error).message})`, response.status);
    }
  }

  /** What is wrong with the signature of the engine's answer to the request signed with `nonce`, or null. */
  #checkAnswer(answer: Buffer, headers: Headers, nonce: string): string | null {
    const v2 = headers.get(V2_HEADER);
    if (v2 !== null) {
      const checked = verifyV2(answer, v2, { keys: this.#keys, sender: "engine", replyTo: nonce, now: this.#now() });
      return checked.ok ? null : checked.message;
    }
    // An engine older than signatures v2 signs its answers with v1 only.
    const v1 = headers.get(V1_HEADER);
    if (v1 === null) return `it carries neither ${V2_HEADER} nor ${V1_HEADER}`;
    return this.#keys.some((key) => verify(answer, key, v1)) ? null : `wrong ${V1_HEADER} (and no ${V2_HEADER})`;
  }
}

/** The engine's `{"error": ...}` message, or the start of the raw body. */
function errorMessage(body: Buffer): string {
  let error: unknown;
  try {
    error = JSON.parse(body.toString("utf8"))?.error;
  } catch {}
  if (typeof error === "object" && error !== null && "message" in error) error = error.message;
  if (error === undefined || error === null || error === "") return body.toString("utf8").slice(0, 500);
  return typeof error === "string" ? error : JSON.stringify(error);
}
