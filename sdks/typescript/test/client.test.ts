/**
 * DurableClient.sync / send against a tiny engine stand-in that checks signatures (v2 and v1, as an
 * engine in compat mode does) and signs its answers, or misbehaves as its mode says.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, test } from "node:test";
import { createFunction, DurableClient, DurableError, sign, signV2, verify, verifyV2 } from "@durable/sdk";
import { KEY, nonceOf } from "./helpers.js";

interface Seen {
  path: string;
  json: any;
  app: string | undefined;
  contentType: string | undefined;
  v1: string | undefined;
  v2: string | undefined;
}

type Mode = "ok" | "v1-engine" | "refuse" | "wrong" | "missing" | "not-json" | "other-request" | "stale" | "app-signed" | "no-r";

/** Records every authentic request; answers like the engine would, or misbehaves as `mode` says. */
const engine = { requests: [] as Seen[], mode: "ok" as Mode, url: "", keys: [KEY], answerKey: KEY };
let server: Server;

async function read(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

before(async () => {
  server = createServer(async (req, res) => {
    const body = await read(req);
    const v1 = req.headers["x-durable-signature"] as string | undefined;
    const v2 = req.headers["x-durable-signature-v2"] as string | undefined;
    const mode = engine.mode;
    const answer = (status: number, payload: unknown) => {
      const bytes = Buffer.from(mode === "not-json" && status === 200 ? "not json" : JSON.stringify(payload));
      const headers: Record<string, string> = { "content-type": "application/json" };
      const key = engine.answerKey;
      const r = v2 && status === 200 ? nonceOf(v2) : "";
      if (mode === "wrong") headers["x-durable-signature"] = "0".repeat(64);
      else if (mode !== "missing") headers["x-durable-signature"] = sign(bytes, key);
      if (mode === "ok" || mode === "not-json" || mode === "refuse") headers["x-durable-signature-v2"] = signV2(bytes, key, { sender: "engine", r });
      if (mode === "other-request") headers["x-durable-signature-v2"] = signV2(bytes, key, { sender: "engine", r: "another-request-nonce" });
      if (mode === "stale") headers["x-durable-signature-v2"] = signV2(bytes, key, { sender: "engine", r, t: Date.now() - 301_000 });
      if (mode === "app-signed") headers["x-durable-signature-v2"] = signV2(bytes, key, { sender: "app", r });
      if (mode === "no-r") headers["x-durable-signature-v2"] = signV2(bytes, key, { sender: "engine" });
      res.writeHead(status, headers).end(bytes);
    };
    // An engine that predates v2 checks v1 only; one in compat mode checks v2 when it is present.
    const checked = verifyV2(body, v2, { keys: engine.keys, sender: "app", replyTo: null });
    const refusal = mode === "v1-engine" ? (engine.keys.some((key) => verify(body, key, v1)) ? null : "wrong x-durable-signature") : checked.ok ? null : checked.message;
    if (refusal !== null) return answer(401, { error: refusal, code: "unauthorized" });
    const json = JSON.parse(body.toString("utf8"));
    engine.requests.push({ path: req.url ?? "", json, app: req.headers["x-durable-app"] as string, contentType: req.headers["content-type"], v1, v2 });
    if (mode === "refuse") return answer(422, { error: "function 'hello': throttle.period: invalid duration 'x'", code: "invalid" });
    let payload: unknown = { ids: ["evt-1", "evt-2"].slice(0, Array.isArray(json) ? json.length : 1) };
    if (req.url === "/fn/sync") payload = { functions: json.functions.map((f: { id: string }) => f.id) };
    answer(200, payload);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  engine.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  engine.requests = [];
  engine.mode = "ok";
  engine.keys = [KEY];
  engine.answerKey = KEY;
});

const client = () =>
  new DurableClient({ baseUrl: engine.url + "/", appId: "app-1", signingKey: KEY, appUrl: "http://localhost:4000/api/durable" });

const hello = createFunction({
  id: "hello",
  trigger: { event: "demo.hello" },
  concurrency: { limit: 2, key: "tenantId" },
  rateLimit: { limit: 5, period: "1m" },
  batch: { maxSize: 10, timeout: 5000 },
  checkpoint: { maxSteps: 5 }, // the SDK's own: never in the wire form
  handler: async ({ step }) => step.run("greet", () => "hi"),
});

test("sync posts the wire form, signed v2 and v1, with x-durable-app", async () => {
  assert.deepStrictEqual(await client().sync([hello]), { functions: ["hello"] });
  const [request] = engine.requests;
  assert.equal(engine.requests.length, 1);
  assert.match(request?.v2 ?? "", /^t=\d+,n=[0-9a-f]{32},s=[0-9a-f]{64}$/, "sender app, no r");
  assert.equal(request?.v1, sign(Buffer.from(JSON.stringify(request?.json)), KEY));
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

test("sync sends a failure handler as the function <id>:failure right after its function", async () => {
  const shipped = createFunction({
    id: "ship",
    name: "Ship",
    trigger: { event: "order.paid" },
    cancelOn: [{ event: "order.cancelled", match: "orderId", timeout: "7d" }],
    idempotency: "orderId",
    singleton: { key: "userId", mode: "cancel" },
    onFailure: ({ event }) => event.data.error.message,
    handler: () => "shipped",
  });
  const child = createFunction({ id: "child", handler: () => 1 });
  assert.deepStrictEqual(await client().sync([shipped, child, shipped.onFailure!]), { functions: ["ship", "ship:failure", "child"] });
  assert.deepStrictEqual(engine.requests[0]?.json.functions, [
    {
      id: "ship",
      name: "Ship",
      trigger: { event: "order.paid" },
      cancelOn: [{ event: "order.cancelled", match: "orderId", timeout: "7d" }],
      idempotency: "orderId",
      singleton: { key: "userId", mode: "cancel" },
      onFailure: "ship:failure",
    },
    { id: "ship:failure", name: "Ship (failure)", trigger: null },
    { id: "child", trigger: null },
  ]);
  const clash = createFunction({ id: "ship:failure", trigger: { event: "x" }, handler: () => 1 });
  await assert.rejects(client().sync([shipped, clash]), { message: "duplicate function id 'ship:failure'" });
});

test("send passes an idempotencyKey per event", async () => {
  await client().send([{ name: "a", idempotencyKey: "pay-42" }, { name: "b", data: { n: 1 } }]);
  assert.deepStrictEqual(engine.requests[0]?.json, [
    { name: "a", data: {}, idempotencyKey: "pay-42" },
    { name: "b", data: { n: 1 } },
  ]);
  await assert.rejects(client().send({ name: "a", idempotencyKey: "k".repeat(257) }), {
    message: /^idempotencyKey must be a non-empty string of at most 256 characters, got 'kkk/,
  });
  await assert.rejects(client().send({ name: "a", idempotencyKey: 42 as never }), {
    message: "idempotencyKey must be a non-empty string of at most 256 characters, got 42",
  });
  assert.equal(engine.requests.length, 1);
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

test("every request has a nonce of its own", async () => {
  await client().send({ name: "a" });
  await client().send({ name: "a" });
  const [first, second] = engine.requests.map((r) => nonceOf(r.v2));
  assert.notEqual(first, second);
});

test("an engine that answers with v1 only (older than v2) is accepted, and it gets a valid v1 signature", async () => {
  engine.mode = "v1-engine";
  assert.deepStrictEqual(await client().send({ name: "demo.hello" }), ["evt-1"]);
  assert.equal(engine.requests.length, 1);
});

for (const [mode, message] of [
  ["wrong", "wrong x-durable-signature (and no x-durable-signature-v2)"],
  ["missing", "it carries neither x-durable-signature-v2 nor x-durable-signature"],
  ["other-request", "x-durable-signature-v2 refused (reply): r=another-request-nonce is not the nonce of the request this answers ("],
  ["no-r", "x-durable-signature-v2 refused (reply): r=(none) is not the nonce of the request this answers ("],
  ["stale", "x-durable-signature-v2 refused (stale): t="],
  ["app-signed", "x-durable-signature-v2 refused (mac): "],
] as const) {
  test(`an answer is refused: ${mode}`, async () => {
    engine.mode = mode;
    await assert.rejects(client().send({ name: "demo.hello" }), (error: unknown) => {
      assert.ok(error instanceof DurableError);
      assert.ok(error.message.startsWith(`POST /e: the answer is refused: ${message}`), error.message);
      assert.equal(error.status, 200);
      return true;
    });
  });
}

test("an answer swapped from another request is refused: r binds it to its request", async () => {
  // Capture a genuine answer to one request, then serve it as the answer to the next one.
  let captured: { body: Buffer; headers: Record<string, string> } | undefined;
  const proxy = createServer(async (req, res) => {
    const body = await read(req);
    if (captured) return res.writeHead(200, captured.headers).end(captured.body);
    const upstream = await fetch(engine.url + (req.url ?? ""), { method: "POST", body, headers: req.headers as Record<string, string> });
    captured = { body: Buffer.from(await upstream.arrayBuffer()), headers: Object.fromEntries(upstream.headers) };
    res.writeHead(upstream.status, captured.headers).end(captured.body);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  try {
    const via = new DurableClient({ baseUrl: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, appId: "app-1", signingKey: KEY });
    assert.deepStrictEqual(await via.send({ name: "a" }), ["evt-1"]);
    await assert.rejects(via.send({ name: "b" }), { name: "DurableError", message: /^POST \/e: the answer is refused: x-durable-signature-v2 refused \(reply\)/ });
  } finally {
    proxy.closeAllConnections();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  }
});

test("the client's clock stamps its requests: 10 minutes ahead, the engine refuses them as stale", async () => {
  const late = new DurableClient({ baseUrl: engine.url, appId: "app-1", signingKey: KEY, now: () => Date.now() + 600_000 });
  // The request is stamped by the same clock: the stand-in engine (real clock) refuses it as stale.
  await assert.rejects(late.send({ name: "a" }), { name: "DurableError", message: /^POST \/e: 401 x-durable-signature-v2 refused \(stale\): t=\d+ is 600 s ahead of this clock/ });
  assert.deepStrictEqual(engine.requests, []);
});

test("while rotating: requests are signed with the primary, answers under the fallback are accepted", async () => {
  engine.keys = [KEY, "new-key"]; // the engine accepts both while rotating, and still signs with the old one
  engine.answerKey = KEY;
  const rotating = new DurableClient({ baseUrl: engine.url, appId: "app-1", signingKey: "new-key", signingKeyFallback: KEY });
  assert.deepStrictEqual(await rotating.send({ name: "a" }), ["evt-1"]);
  const [request] = engine.requests;
  assert.ok(verifyV2(Buffer.from(JSON.stringify(request?.json)), request?.v2, { keys: ["new-key"], sender: "app", replyTo: null }).ok, "signed with the primary");
  const noFallback = new DurableClient({ baseUrl: engine.url, appId: "app-1", signingKey: "new-key" });
  await assert.rejects(noFallback.send({ name: "a" }), { message: /^POST \/e: the answer is refused: x-durable-signature-v2 refused \(mac\)/ });
  engine.mode = "v1-engine"; // an older engine: v1 answers under the fallback are accepted too
  assert.deepStrictEqual(await rotating.send({ name: "a" }), ["evt-1"]);
  assert.throws(() => new DurableClient({ baseUrl: engine.url, appId: "a", signingKey: KEY, signingKeyFallback: "" }), {
    message: "DurableClient: signingKeyFallback must be a non-empty string when given, got ''",
  });
});

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
  await assert.rejects(other.send({ name: "demo.hello" }), (error: unknown) => {
    assert.ok(error instanceof DurableError);
    assert.equal(error.message, "POST /e: 401 x-durable-signature-v2 refused (mac): s does not match (a wrong key, an altered body, or not signed by the app)");
    assert.equal(error.status, 401);
    return true;
  });
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
  const rotating = new DurableClient({ baseUrl: engine.url, appId: "a", signingKey: KEY, signingKeyFallback: "old-key" });
  assert.ok(!JSON.stringify(rotating).includes("old-key"));
});
