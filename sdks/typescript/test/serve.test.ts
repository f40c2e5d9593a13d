/** serve(): the Node http handler on a real server, the Fetch handler, and the Express-style (req, res) form. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createFunction, serve, sign, verify, type DurableHandler } from "@durable/sdk";
import { answerProblem, expressCall, fetchCall, httpCall, invokeBody, KEY, nodeServer, nonceOf, signed, type Answer } from "./helpers.js";

const hello = createFunction({
  id: "hello",
  trigger: { event: "demo.hello" },
  handler: async ({ event, step }) => step.run("greet", () => `hi ${event.data.name} ☕`),
});
/** What `hello` answers a first invoke: its step and the handler's return, checkpointed (the default) in one op. */
const GREETED = { op: "checkpoint", steps: [{ id: "greet", data: "hi Zoë ☕" }], then: { op: "done", data: "hi Zoë ☕" } };
const plain = createFunction({ id: "plain", trigger: { event: "demo.plain" }, handler: () => "plain" });
const handler = serve([hello, plain], { signingKey: KEY });

let server: { url: string; close(): Promise<void> };
before(async () => (server = await nodeServer(handler)));
after(() => server.close());

/** Each way of calling the handler with a POST body (and one GET/PUT), by name. */
const forms: Record<string, (body: Buffer, headers: Record<string, string>, method?: string) => Promise<Answer>> = {
  "node http": (body, headers, method = "POST") => httpCall(server.url, method === "POST" ? body : undefined, headers, method),
  fetch: (body, headers, method = "POST") => fetchCall(handler, method === "POST" ? body : undefined, headers, method),
  "express raw Buffer": (body, headers, method) => expressCall(handler, { method, headers, body }),
  "express text body": (body, headers, method) => expressCall(handler, { method, headers, body: body.toString("utf8") }),
  "express unread stream": (body, headers, method) => expressCall(handler, { method, headers, stream: [body.subarray(0, 10), body.subarray(10, 30), body.subarray(30)] }),
};

for (const [form, call] of Object.entries(forms)) {
  describe(form, () => {
    test("an invoke is answered with one signed, compact op", async () => {
      const body = invokeBody();
      const request = signed(body);
      const answer = await call(body, request);
      assert.equal(answer.status, 200);
      assert.equal(answer.headers["content-type"], "application/json");
      assert.equal(answerProblem(answer, request), null); // v2 from the app with r = the invoke's n, and v1
      assert.equal(answer.headers["x-durable-signature"], sign(answer.body, KEY));
      const answered = answer.headers["x-durable-signature-v2"]!;
      assert.match(answered, /^t=\d+,n=[0-9a-f]{32},r=[0-9a-f]{32},s=[0-9a-f]{64}$/);
      assert.notEqual(nonceOf(answered), nonceOf(request["x-durable-signature-v2"]), "the answer has a nonce of its own");
      assert.equal(answer.body.toString("utf8"), '{"op":"checkpoint","steps":[{"id":"greet","data":"hi Zoë ☕"}],"then":{"op":"done","data":"hi Zoë ☕"}}');
      assert.equal(Number(answer.headers["content-length"]), answer.body.length);
    });

    test("a replay finishes with done", async () => {
      const body = invokeBody("hello", { greet: { type: "run", data: "hi there" } });
      assert.deepStrictEqual((await call(body, signed(body))).json(), { op: "done", data: "hi there" });
    });

    test("an unknown function is 404", async () => {
      const body = invokeBody("nope");
      const request = signed(body);
      const answer = await call(body, request);
      assert.equal(answer.status, 404);
      assert.deepStrictEqual(answer.json(), { error: "unknown function 'nope'" });
      assert.equal(answerProblem(answer, request), null);
    });

    for (const [body, problem] of <[string, string][]>[
      ["{not json", "invalid JSON"],
      ["[]", "the body must be a JSON object"],
      ['{"event": {}}', "functionId must be a string"],
      ['{"functionId": "hello", "event": "x"}', "event must be an object"],
      ['{"functionId": "hello", "event": {}, "steps": []}', "steps must be an object"],
      ['{"functionId": "hello", "event": {}, "steps": {"a": {"type": "nap"}}}', "steps.a must be an object with type run, sleep, wait, invoke or send"],
    ]) {
      test(`a malformed invoke is 400: ${problem}`, async () => {
        const request = signed(body);
        const answer = await call(Buffer.from(body), request);
        assert.equal(answer.status, 400);
        assert.equal(answerProblem(answer, request), null);
        assert.ok(answer.json().error.startsWith(`malformed invoke: ${problem}`), answer.json().error);
      });
    }

    test("GET lists the functions, other methods are 405", async () => {
      const listed = await call(Buffer.alloc(0), {}, "GET");
      assert.deepStrictEqual([listed.status, listed.json()], [200, { functions: ["hello", "plain"] }]);
      assert.ok(verify(listed.body, KEY, listed.headers["x-durable-signature"]));
      assert.equal(listed.headers["x-durable-signature-v2"], undefined, "v2 signs only answers to authentic invokes");
      const refused = await call(Buffer.alloc(0), {}, "PUT");
      assert.deepStrictEqual([refused.status, refused.json()], [405, { error: "method PUT not allowed: the engine POSTs invokes" }]);
    });
  });
}

describe("oversized bodies are 413", () => {
  const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
  for (const [form, call] of Object.entries(forms)) {
    test(form, async () => {
      const answer = await call(big, { "x-durable-signature": "x" });
      assert.equal(answer.status, 413);
      assert.deepStrictEqual(answer.json(), { error: "body over 4194304 bytes" });
    });
  }
  test("a chunked stream over the limit without content-length", async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const answer = await expressCall(handler, { headers: {}, stream: [chunk, chunk, chunk, chunk, chunk] });
    assert.equal(answer.status, 413);
  });
});

describe("a body already parsed as JSON (express.json())", () => {
  test("verifies when its re-serialisation is the signed bytes", async () => {
    const body = invokeBody();
    const answer = await expressCall(handler, { headers: signed(body), body: JSON.parse(body.toString()) });
    assert.deepStrictEqual(answer.json(), GREETED);
  });
  test("is refused with a hint when it is not", async () => {
    const body = Buffer.from(JSON.stringify(JSON.parse(invokeBody().toString()), null, 1));
    const answer = await expressCall(handler, { headers: signed(body), body: JSON.parse(body.toString()) });
    assert.equal(answer.status, 401);
    assert.match(answer.json().error, /^x-durable-signature-v2 refused \(mac\): .* \(req.body was parsed as JSON: mount serve\(\) behind express.raw/);
  });
});

test("a Fetch handler also works when called with a second context argument (Next.js)", async () => {
  const body = invokeBody();
  const request = new Request("http://app.test/api/durable", { method: "POST", body, headers: signed(body) });
  const response = await handler(request, { params: Promise.resolve({}) });
  assert.equal(response.status, 200);
  assert.deepStrictEqual(await response.json(), GREETED);
});

test("calling the handler with something else is a TypeError", async () => {
  const loose = handler as unknown as (...args: unknown[]) => Promise<unknown>;
  await assert.rejects(loose({ headers: {} }), { name: "TypeError", message: /handler\(c\.req\.raw\)/ });
});

test("serve refuses bad arguments", () => {
  assert.throws(() => serve([hello], { signingKey: "" }), { message: "serve: signingKey must be a non-empty string" });
  assert.throws(() => serve([hello], { signingKey: KEY, signingKeyFallback: "" }), { message: "serve: signingKeyFallback must be a non-empty string when given" });
  assert.throws(() => serve([hello], { signingKey: KEY, now: 5 as never }), { message: "serve: now must be a function returning epoch milliseconds" });
  assert.throws(() => serve([hello, hello], { signingKey: KEY }), { message: "duplicate function id 'hello'" });
  assert.throws(() => serve([(() => null) as never], { signingKey: KEY }), { message: /^expected functions made by createFunction/ });
});

test("the handler type accepts node http, Express-style and Fetch call sites", () => {
  // Compile-time checks: these assignments are what users write.
  const asFetch: (request: Request) => Promise<Response> = handler;
  const asNextRoute: (request: Request, context: { params: Promise<Record<string, string>> }) => Promise<Response> = handler;
  const asNode: DurableHandler = serve([], { signingKey: KEY });
  assert.equal(typeof asFetch, "function");
  assert.equal(typeof asNextRoute, "function");
  assert.equal(typeof asNode, "function");
});
