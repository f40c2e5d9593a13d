/** Shared by the tests: paths to the shared vectors, and ways to call a `serve` handler. */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { sign, signV2, verifyV2, type DurableHandler, type Sender } from "@durable/sdk";

export const KEY = "signkey-test-1";

/** Read a JSON file of ../../spec/conformance (from dist/test/ that is ../../../../spec). */
export function spec<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../../../../spec/conformance/${name}`, import.meta.url), "utf8")) as T;
}

/** An answer as the tests inspect it. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  json(): any;
}

function answer(status: number, headers: Record<string, string>, body: Buffer): Answer {
  return { status, headers, body, json: () => JSON.parse(body.toString("utf8")) };
}

/** An invoke body for `functionId` with the event `{name: "demo.hello", data}`. */
export function invokeBody(functionId = "hello", steps: Record<string, unknown> = {}, data: unknown = { name: "Zoë" }): Buffer {
  const event = { id: "e1", name: "demo.hello", data, ts: 1767225600000 };
  return Buffer.from(JSON.stringify({ runId: "r1", functionId, attempt: 1, event, steps }));
}

/** How {@link signed} signs: the key, the sender (default `engine`), the time (default now), the nonce, r. */
export interface SignAs {
  key?: string;
  sender?: Sender;
  t?: number;
  n?: string;
  r?: string;
}

/**
 * Headers carrying the v2 signature of `body` (an invoke from the engine, fresh, a new nonce, unless
 * `as` says otherwise) and its v1 signature, as an engine in compat mode sends them.
 */
export function signed(body: Buffer | string, as: SignAs = {}): Record<string, string> {
  const { key = KEY, sender = "engine", t = Date.now(), n, r } = as;
  return {
    "content-type": "application/json",
    "x-durable-signature-v2": signV2(body, key, { sender, t, n, r }),
    "x-durable-signature": sign(body, key),
  };
}

/** Headers carrying only the v1 signature of `body`, as the seed's engine sends them. */
export function signedV1(body: Buffer | string, key = KEY): Record<string, string> {
  return { "content-type": "application/json", "x-durable-signature": sign(body, key) };
}

/** The nonce `n=` of a v2 header value. */
export function nonceOf(header: string | undefined): string {
  const n = /(?:^|,)n=([^,]*)/.exec(header ?? "")?.[1];
  if (!n) throw new Error(`no n= in ${JSON.stringify(header)}`);
  return n;
}

/**
 * Why the answer's v2 signature does not hold as the app's answer to the invoke sent with
 * `request` headers (r must be that invoke's nonce), or null when it holds. Its v1 signature must too.
 */
export function answerProblem(answer: Answer, request: Record<string, string>, key = KEY, now = Date.now()): string | null {
  const replyTo = nonceOf(request["x-durable-signature-v2"]);
  const checked = verifyV2(answer.body, answer.headers["x-durable-signature-v2"], { keys: [key], sender: "app", replyTo, now });
  if (!checked.ok) return checked.message;
  if (answer.headers["x-durable-signature"] !== sign(answer.body, key)) return "the v1 x-durable-signature is not the body's";
  return null;
}

/** Call the handler the Fetch way: `Request` in, `Response` out. */
export async function fetchCall(handler: DurableHandler, body?: Buffer, headers: Record<string, string> = {}, method = "POST"): Promise<Answer> {
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = body;
  const response = await handler(new Request("http://app.test/api/durable", init));
  return answer(response.status, Object.fromEntries(response.headers), Buffer.from(await response.arrayBuffer()));
}

/**
 * Call the handler the Express way with a minimal (req, res) shim: `req.body` as given (a Buffer from
 * `express.raw()`, a string, a parsed object), or undefined with the body only in the request stream.
 */
export async function expressCall(
  handler: DurableHandler,
  req: { method?: string; headers?: Record<string, string>; body?: unknown; stream?: Buffer[] },
): Promise<Answer> {
  const request = Object.assign(Readable.from(req.stream ?? []), {
    method: req.method ?? "POST",
    headers: req.headers ?? {},
    body: req.body,
  });
  let status = 0;
  let headers: Record<string, string> = {};
  let body = Buffer.alloc(0);
  const res = {
    writeHead(code: number, head: Record<string, string>) {
      status = code;
      headers = head;
    },
    end(chunk: Uint8Array) {
      body = Buffer.from(chunk);
    },
  };
  const result = await handler(request, res, () => {});
  if (result !== undefined) throw new Error("the (req, res) form must resolve with nothing");
  return answer(status, headers, body);
}

/** A real Node http server on an ephemeral port serving `handler`. */
export async function nodeServer(handler: DurableHandler): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/durable`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** POST (or `method`) to a URL with fetch and collect the answer. */
export async function httpCall(url: string, body?: Buffer, headers: Record<string, string> = {}, method = "POST"): Promise<Answer> {
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = body;
  const response = await fetch(url, init);
  return answer(response.status, Object.fromEntries(response.headers), Buffer.from(await response.arrayBuffer()));
}
