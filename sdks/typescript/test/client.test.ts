/** DurableClient.sync / send against a tiny engine stand-in that checks signatures and signs answers. */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, test } from "node:test";
import { createFunction, DurableClient, DurableError, sign, verify } from "@durable/sdk";
import { KEY } from "./helpers.js";

interface Seen {
  path: string;
  json: any;
  app: string | undefined;
  contentType: string | undefined;
}

/** Records every authentic request; answers like the engine would, or misbehaves as `mode` says. */
const engine = { requests: [] as Seen[], mode: "ok" as "ok" | "refuse" | "wrong" | "missing" | "not-json", url: "" };
let server: Server;

async function read(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

before(async () => {
  server = createServer(async (req, res) => {
    const body = await read(req);
    const answer = (status: number, payload: unknown, signature?: string) => {
      const bytes = Buffer.from(engine.mode === "not-json" && status === 200 ? "not json" : JSON.stringify(payload));
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (signature !== "") headers["x-durable-signature"] = signature ?? sign(bytes, KEY);
      res.writeHead(status, headers).end(bytes);
    };
    if (!verify(body, KEY, req.headers["x-durable-signature"] as string)) return answer(401, { error: "wrong x-durable-signature", code: "unauthorized" });
    const json = JSON.parse(body.toString("utf8"));
    engine.requests.push({ path: req.url ?? "", json, app: req.headers["x-durable-app"] as string, contentType: req.headers["content-type"] });
    if (engine.mode === "refuse") return answer(422, { error: "function 'hello': throttle.period: invalid duration 'x'", code: "invalid" });
    let payload: unknown = { ids: ["evt-1", "evt-2"].slice(0, Array.isArray(json) ? json.length : 1) };
    if (req.url === "/fn/sync") payload = { functions: json.functions.map((f: { id: string }) => f.id) };
    answer(200, payload, { ok: undefined, "not-json": undefined, wrong: "0".repeat(64), missing: "" }[engine.mode]);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  engine.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  engine.requests = [];
  engine.mode = "ok";
});

const client = () =>
  new DurableClient({ baseUrl: engine.url + "/", appId: "app-1", signingKey: KEY, appUrl: "http://localhost:4000/api/durable" });

const hello = createFunction({
  id: "hello",
  trigger: { event: "demo.hello" },
  concurrency: { limit: 2, key: "tenantId" },
  rateLimit: { limit: 5, period: "1m" },
  batch: { maxSize: 10, timeout: 5000 },
  handler: async ({ step }) => step.run("greet", () => "hi"),
});

test("sync posts the wire form, signed, with x-durable-app", async () => {
  assert.deepStrictEqual(await client().sync([hello]), { functions: ["hello"] });
  const [request] = engine.requests;
  assert.equal(engine.requests.length, 1);
  assert.equal(request?.path, "/fn/sync");
  assert.equal(request?.app, "app-1");
  assert.equal(request?.contentType, "application/json");
  assert.deepStrictEqual(request?.json, {
    url: "http://localhost:4000/api/durable",
    functions: [
      {
        id: "hello",
        trigger: { event: "demo.hello" },
        concurrency: { limit: 2, key: "tenantId" },
        rateLimit: { limit: 5, period: "1m" },
        batch: { maxSize: 10, timeout: 5000 },
      },
    ],
  });
});

test("send posts one event and resolves with its ids", async () => {
  assert.deepStrictEqual(await client().send({ name: "demo.hello", data: { name: "world" } }), ["evt-1"]);
  assert.deepStrictEqual(await client().send({ name: "demo.hello", id: "order-1", ts: 1767225600000 }), ["evt-1"]);
  assert.deepStrictEqual(
    engine.requests.map((r) => r.json),
    [
      { name: "demo.hello", data: { name: "world" } },
      { name: "demo.hello", data: {}, id: "order-1", ts: 1767225600000 },
    ],
  );
  assert.deepStrictEqual(new Set(engine.requests.map((r) => r.path)), new Set(["/e"]));
});

test("send posts a list as a list", async () => {
  const ids = await client().send([{ name: "a.b", data: { n: 1 } }, { name: "a.c", id: "x" }]);
  assert.deepStrictEqual(ids, ["evt-1", "evt-2"]);
  assert.deepStrictEqual(engine.requests[0]?.json, [
    { name: "a.b", data: { n: 1 } },
    { name: "a.c", data: {}, id: "x" },
  ]);
});

for (const mode of ["wrong", "missing"] as const) {
  test(`an answer with a ${mode} signature is refused`, async () => {
    engine.mode = mode;
    await assert.rejects(client().send({ name: "demo.hello" }), (error: unknown) => {
      assert.ok(error instanceof DurableError);
      assert.equal(error.message, `POST /e: the answer has a ${mode} x-durable-signature`);
      return true;
    });
  });
}

test("an answer that is not JSON is refused", async () => {
  engine.mode = "not-json";
  await assert.rejects(client().send({ name: "demo.hello" }), { name: "DurableError", message: /^POST \/e: the answer is not JSON/ });
});

test("non-2xx rejects with the engine's error message and status", async () => {
  engine.mode = "refuse";
  await assert.rejects(client().sync([hello]), (error: unknown) => {
    assert.ok(error instanceof DurableError);
    assert.equal(error.message, "POST /fn/sync: 422 function 'hello': throttle.period: invalid duration 'x'");
    assert.equal(error.status, 422);
    return true;
  });
});

test("a wrong key is refused by the engine, nothing is recorded", async () => {
  const other = new DurableClient({ baseUrl: engine.url, appId: "app-1", signingKey: "other" });
  await assert.rejects(other.send({ name: "demo.hello" }), { name: "DurableError", message: "POST /e: 401 wrong x-durable-signature" });
  assert.deepStrictEqual(engine.requests, []);
});

test("an unreachable engine rejects with DurableError", async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const unreachable = new DurableClient({ baseUrl: url, appId: "a", signingKey: KEY, timeoutMs: 2000 });
  await assert.rejects(unreachable.send({ name: "x" }), { name: "DurableError", message: /^POST \/e: cannot reach the engine at http/ });
});

test("a hung engine times out", async () => {
  const hung = createServer(() => {});
  await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
  try {
    const slow = new DurableClient({ baseUrl: url, appId: "a", signingKey: KEY, timeoutMs: 100 });
    await assert.rejects(slow.send({ name: "x" }), { name: "DurableError", message: /cannot reach the engine.*timeout/ });
  } finally {
    hung.closeAllConnections();
    await new Promise<void>((resolve) => hung.close(() => resolve()));
  }
});

test("bad calls fail before any request", async () => {
  const noAppUrl = new DurableClient({ baseUrl: engine.url, appId: "a", signingKey: KEY });
  await assert.rejects(noAppUrl.sync([hello]), { message: "DurableClient.sync needs appUrl: where the engine reaches your app" });
  await assert.rejects(client().send({ name: "" }), { message: "event name must be a non-empty string, got ''" });
  await assert.rejects(client().send([{ name: "ok" }, { data: {} } as never]), { message: "event name must be a non-empty string, got undefined" });
  await assert.rejects(client().sync([hello, hello]), { message: "duplicate function id 'hello'" });
  assert.deepStrictEqual(engine.requests, []);
  assert.throws(() => new DurableClient({ baseUrl: "", appId: "a", signingKey: KEY }), { message: "DurableClient: baseUrl must be a non-empty string, got ''" });
  assert.throws(() => new DurableClient({ baseUrl: "http://x", appId: "a" } as never), { message: /signingKey must be a non-empty string/ });
});

test("the signing key is not exposed on the client", () => {
  const c = client();
  assert.ok(!JSON.stringify(c).includes(KEY));
  assert.ok(!Object.values(c).includes(KEY));
});
