/** Shared by the tests: paths to the shared vectors, and ways to call a `serve` handler. */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { sign, type DurableHandler } from "@durable/sdk";

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

/** Headers carrying the signature of `body` under `key`. */
export function signed(body: Buffer | string, key = KEY): Record<string, string> {
  return { "content-type": "application/json", "x-durable-signature": sign(body, key) };
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
