/** The app side of the wire protocol: verify, route and answer invokes as a Fetch, Node http or Express handler. */
import { index, repr, type DurableFunction } from "./function.js";
import { sign, verify } from "./signing.js";
import { execute, type Invoke } from "./step.js";

const MAX_BODY = 4 * 1024 * 1024; // the engine refuses bodies over 4 MiB; so does the app

/** Options of {@link serve}. */
export interface ServeOptions {
  /** The workspace's signing key: invokes must be signed with it, and every answer is. */
  signingKey: string;
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

/**
 * Answer the engine's signed invokes for `functions` on any path: verify `x-durable-signature`, replay
 * the function, answer its next op, signed. GET lists the function ids.
 */
export function serve(functions: Iterable<DurableFunction<any, any>>, options: ServeOptions): DurableHandler {
  const key = options?.signingKey;
  if (typeof key !== "string" || !key) throw new Error("serve: signingKey must be a non-empty string");
  const byId = index(functions);

  async function route(method: string, read: () => Promise<Body>, signature: string | undefined): Promise<[number, unknown]> {
    if (method === "GET") return [200, { functions: [...byId.keys()].sort() }];
    if (method !== "POST") return [405, { error: `method ${method} not allowed: the engine POSTs invokes` }];
    const { bytes, parsed } = await read();
    if (bytes === null) return [413, { error: `body over ${MAX_BODY} bytes` }];
    if (!verify(bytes, key, signature)) {
      const hint = parsed ? ` (req.body was parsed as JSON: mount serve() behind express.raw({ type: "application/json" }))` : "";
      return [401, { error: `${signature ? "wrong" : "missing"} x-durable-signature${hint}` }];
    }
    const invoke = parseInvoke(bytes);
    if (typeof invoke === "string") return [400, { error: `malformed invoke: ${invoke}` }];
    const fn = byId.get(invoke.functionId);
    if (!fn) return [404, { error: `unknown function ${repr(invoke.functionId)}` }];
    return [200, await execute(fn, invoke)];
  }

  async function answer(method: string, read: () => Promise<Body>, signature: string | null | undefined) {
    let status: number, payload: unknown;
    try {
      [status, payload] = await route(method.toUpperCase(), read, signature ?? undefined);
    } catch (error) {
      [status, payload] = [500, { error: `durable serve failed: ${(error as Error)?.message ?? error}` }];
    }
    const body = Buffer.from(JSON.stringify(payload));
    const headers = { "content-type": "application/json", "content-length": String(body.length), "x-durable-signature": sign(body, key) };
    return { status, headers, body };
  }

  async function handler(req: Request | NodeLikeRequest, res?: unknown): Promise<Response | void> {
    if (isFetchRequest(req)) {
      const reply = await answer(req.method, () => readFetch(req), req.headers.get("x-durable-signature"));
      return new Response(reply.body, { status: reply.status, headers: reply.headers });
    }
    if (typeof (res as NodeLikeResponse)?.writeHead !== "function")
      throw new TypeError("serve(): call the handler with (request: Request) or (req, res); in Hono: handler(c.req.raw)");
    const signature = req.headers["x-durable-signature"];
    const reply = await answer(req.method ?? "GET", () => readNode(req), Array.isArray(signature) ? signature[0] : signature);
    (res as NodeLikeResponse).writeHead(reply.status, reply.headers);
    (res as NodeLikeResponse).end(reply.body);
  }
  return handler as DurableHandler;
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
    if (!isObject(memo) || !["run", "sleep", "wait"].includes(memo.type)) return `steps.${id} must be an object with type run, sleep or wait`;
  if (!Number.isSafeInteger(invoke.attempt)) invoke.attempt = 1;
  return invoke as Invoke;
}
