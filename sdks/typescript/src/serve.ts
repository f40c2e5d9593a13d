/** The app side of the wire protocol: verify, route and answer invokes as a Fetch, Node http or Express handler. */
import { performance } from "node:perf_hooks";
import { index, repr, type DurableFunction } from "./function.js";
import { processNonces } from "./nonces.js";
import { sign, signV2, V1_HEADER, V2_HEADER, verifyV2 } from "./signing.js";
import { execute, type Invoke } from "./step.js";

const MAX_BODY = 4 * 1024 * 1024; // the engine refuses bodies over 4 MiB; so does the app
const MEMO_TYPES = ["run", "sleep", "wait", "invoke", "send"];
/** W3C trace context of the engine's invoke span (sent beside the signature, never signed). */
const TRACEPARENT_HEADER = "traceparent";
const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$/;

/** Options of {@link serve}. */
export interface ServeOptions {
  /** The workspace's signing key: invokes must be signed with it (or the fallback), and every answer is. */
  signingKey: string;
  /**
   * While the workspace's key is rotated: the other key, also accepted on invokes (never used to sign).
   * Deploy the new key as `signingKey` with the old one here, and drop this once the old key is removed.
   */
  signingKeyFallback?: string | undefined;
  /** The clock that invokes must be fresh by, epoch milliseconds (default `Date.now`); tests move it. */
  now?: (() => number) | undefined;
}

/**
 * A Node `http.IncomingMessage`, or an Express request. When a body parser ran, `req.body` must hold the
 * exact bytes (`express.raw({ type: "application/json" })`); when it is undefined the stream is read.
 */
export interface NodeLikeRequest {
  method?: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
  [Symbol.asyncIterator]?(): AsyncIterator<Uint8Array | string>;
}

/** A Node `http.ServerResponse` (an Express response is one). */
export interface NodeLikeResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(body: Uint8Array): unknown;
}

/** What {@link serve} returns: one handler for Node http / Express `(req, res)` and Fetch `(request)`. */
export interface DurableHandler {
  /** Node `http.createServer(handler)`, or Express `app.post(path, express.raw({type: "application/json"}), handler)`. */
  (req: NodeLikeRequest, res: NodeLikeResponse, next?: unknown): Promise<void>;
  /** Fetch API (Next.js route handlers, Hono's `c.req.raw`, Bun, Deno): a `Request` in, a `Response` out. */
  (request: Request, context?: unknown): Promise<Response>;
}

/** A request body: its bytes (null: over the size limit), and whether they are a re-serialisation. */
type Body = { bytes: Uint8Array | null; parsed: boolean };

/** A header of the request, by lower-case name. */
type Header = (name: string) => string | undefined;

/** What `route` decided: the status and payload, and the nonce of the authentic invoke being answered. */
type Routed = { status: number; payload: unknown; invoke?: string };

/**
 * Answer the engine's signed invokes for `functions` on any path: verify `x-durable-signature-v2`
 * (fresh, signed by the engine, a nonce not seen before), replay the function, answer its next op,
 * signed with v2 (bound to the invoke by `r`) and v1. GET lists the function ids. The failure handler of a
 * function with `onFailure` is served as the function `<id>:failure`.
 */
export function serve(functions: Iterable<DurableFunction<any, any>>, options: ServeOptions): DurableHandler {
  const key = options?.signingKey;
  if (typeof key !== "string" || !key) throw new Error("serve: signingKey must be a non-empty string");
  const fallback = options.signingKeyFallback;
  if (fallback !== undefined && (typeof fallback !== "string" || !fallback))
    throw new Error("serve: signingKeyFallback must be a non-empty string when given");
  const keys = fallback === undefined ? [key] : [key, fallback];
  const clock = options.now ?? (() => Date.now()); // looked up at each call: a test may replace Date
  if (typeof clock !== "function") throw new Error("serve: now must be a function returning epoch milliseconds");
  const byId = index(functions);

  async function route(method: string, read: () => Promise<Body>, header: Header): Promise<Routed> {
    const started = performance.now(); // a checkpoint's maxMs counts from the invoke's arrival
    if (method === "GET") return { status: 200, payload: { functions: [...byId.keys()].sort() } };
    if (method !== "POST") return { status: 405, payload: { error: `method ${method} not allowed: the engine POSTs invokes` } };
    const { bytes, parsed } = await read();
    if (bytes === null) return { status: 413, payload: { error: `body over ${MAX_BODY} bytes` } };
    const signature = header(V2_HEADER);
    if (signature === undefined && header(V1_HEADER) !== undefined)
      return refuse(`this SDK requires signatures v2: the invoke carries only ${V1_HEADER} (v1), no ${V2_HEADER} (upgrade the engine)`);
    const now = clock();
    const checked = verifyV2(bytes, signature, { keys, sender: "engine", replyTo: null, now });
    if (!checked.ok) {
      const hint = parsed && checked.reason === "mac" ? ` (req.body was parsed as JSON: mount serve() behind express.raw({ type: "application/json" }))` : "";
      return refuse(checked.message + hint);
    }
    // Remembered before the handler runs, so that a replay racing the original is refused too.
    if (!processNonces.accept(checked.n, checked.t, now))
      return refuse(`${V2_HEADER} refused (replay): n=${checked.n} was already accepted by this app process`);
    const invoke = parseInvoke(bytes);
    if (typeof invoke === "string") return { status: 400, payload: { error: `malformed invoke: ${invoke}` }, invoke: checked.n };
    const fn = byId.get(invoke.functionId);
    if (!fn) return { status: 404, payload: { error: `unknown function ${repr(invoke.functionId)}` }, invoke: checked.n };
    // The invoke's `traceparent`, for the handler's context (null when absent or malformed).
    const traced = Object.assign(invoke, { traceparent: parseTraceparent(header(TRACEPARENT_HEADER)) });
    try {
      return { status: 200, payload: await execute(fn, traced, started), invoke: checked.n };
    } catch (error) {
      return { status: 500, payload: { error: `durable serve failed: ${(error as Error)?.message ?? error}` }, invoke: checked.n };
    }
  }

  async function answer(method: string, read: () => Promise<Body>, header: Header) {
    let routed: Routed;
    try {
      routed = await route(method.toUpperCase(), read, header);
    } catch (error) {
      routed = { status: 500, payload: { error: `durable serve failed: ${(error as Error)?.message ?? error}` } };
    }
    const body = Buffer.from(JSON.stringify(routed.payload));
    const headers: Record<string, string> = { "content-type": "application/json", "content-length": String(body.length), [V1_HEADER]: sign(body, key) };
    // Only an answer to an authentic invoke is v2-signed: r binds it to that invoke, and nothing
    // unauthenticated gets the app's v2 signature (which could otherwise pass as an app request).
    if (routed.invoke !== undefined) headers[V2_HEADER] = signV2(body, key, { sender: "app", t: clock(), r: routed.invoke });
    return { status: routed.status, headers, body };
  }

  async function handler(req: Request | NodeLikeRequest, res?: unknown): Promise<Response | void> {
    if (isFetchRequest(req)) {
      const reply = await answer(req.method, () => readFetch(req), (name) => req.headers.get(name) ?? undefined);
      return new Response(reply.body, { status: reply.status, headers: reply.headers });
    }
    if (typeof (res as NodeLikeResponse)?.writeHead !== "function")
      throw new TypeError("serve(): call the handler with (request: Request) or (req, res); in Hono: handler(c.req.raw)");
    const header: Header = (name) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const reply = await answer(req.method ?? "GET", () => readNode(req), header);
    (res as NodeLikeResponse).writeHead(reply.status, reply.headers);
    (res as NodeLikeResponse).end(reply.body);
  }
  return handler as DurableHandler;
}

/** A 401 naming what was wrong with the invoke's signature. */
function refuse(error: string): Routed {
  return { status: 401, payload: { error } };
}

function isFetchRequest(value: unknown): value is Request {
  const request = value as Request | undefined;
  return typeof request?.arrayBuffer === "function" && typeof request.headers?.get === "function";
}

async function readFetch(request: Request): Promise<Body> {
  if (Number(request.headers.get("content-length") ?? 0) > MAX_BODY) return { bytes: null, parsed: false };
  const bytes = new Uint8Array(await request.arrayBuffer());
  return { bytes: bytes.length > MAX_BODY ? null : bytes, parsed: false };
}

async function readNode(req: NodeLikeRequest): Promise<Body> {
  const given = req.body;
  if (typeof given === "string" || given instanceof Uint8Array) {
    const bytes = Buffer.from(given);
    return { bytes: bytes.length > MAX_BODY ? null : bytes, parsed: false };
  }
  // Already parsed: only a re-serialisation identical to the signed bytes can verify.
  if (given !== undefined && given !== null) return { bytes: Buffer.from(JSON.stringify(given)), parsed: true };
  if (!req[Symbol.asyncIterator]) return { bytes: new Uint8Array(), parsed: false }; // neither a body nor a stream
  if (Number(req.headers["content-length"] ?? 0) > MAX_BODY) return { bytes: null, parsed: false };
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Uint8Array | string>) {
    size += chunk.length; // past the limit, keep draining so the 413 can still be written
    if (size <= MAX_BODY) chunks.push(Buffer.from(chunk));
  }
  return { bytes: size > MAX_BODY ? null : Buffer.concat(chunks), parsed: false };
}

/**
 * A W3C `traceparent` value if well-formed (lower-case hex, non-zero ids, version not `ff`), else null:
 * a malformed one is ignored, as the W3C recommendation says.
 */
function parseTraceparent(value: string | undefined): string | null {
  const trimmed = value?.trim();
  return trimmed !== undefined && TRACEPARENT.test(trimmed) ? trimmed : null;
}

/** Decode an invoke body into an {@link Invoke}, or return what is wrong with it. */
function parseInvoke(bytes: Uint8Array): Invoke | string {
  let invoke: any;
  try {
    invoke = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (error) {
    return `invalid JSON (${(error as Error).message})`;
  }
  const isObject = (value: unknown) => typeof value === "object" && value !== null && !Array.isArray(value);
  if (!isObject(invoke)) return "the body must be a JSON object";
  if (typeof invoke.functionId !== "string") return "functionId must be a string";
  if (!isObject(invoke.event)) return "event must be an object";
  invoke.steps ??= {};
  if (!isObject(invoke.steps)) return "steps must be an object";
  for (const [id, memo] of Object.entries<any>(invoke.steps))
    if (!isObject(memo) || !MEMO_TYPES.includes(memo.type)) return `steps.${id} must be an object with type run, sleep, wait, invoke or send`;
  if (!Number.isSafeInteger(invoke.attempt)) invoke.attempt = 1;
  return invoke as Invoke;
}
