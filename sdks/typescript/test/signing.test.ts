/** sign/verify, and the served endpoint's refusal of missing and wrong signatures in all three forms. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createFunction, serve, sign, verify } from "@durable/sdk";
import { expressCall, fetchCall, httpCall, invokeBody, KEY, nodeServer, signed } from "./helpers.js";

test("sign is the lowercase hex HMAC-SHA256 of the exact bytes", () => {
  const fox = "The quick brown fox jumps over the lazy dog"; // RFC-style reference value
  assert.equal(sign(fox, "key"), "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
  assert.match(sign('{"a":1}', KEY), /^[0-9a-f]{64}$/);
  assert.notEqual(sign('{"a":1}', KEY), sign('{"a": 1}', KEY)); // whitespace matters: no re-serialisation
  assert.equal(sign("é", KEY), sign(Buffer.from([0xc3, 0xa9]), KEY)); // strings are UTF-8
});

for (const signature of [undefined, null, "", "not-hex", "é".repeat(64), "0".repeat(63), "0".repeat(65)]) {
  test(`verify refuses ${JSON.stringify(signature)}`, () => {
    assert.equal(verify("{}", "k", signature), false);
  });
}

test("verify accepts surrounding whitespace and upper-case hex", () => {
  const signature = sign("{}", "k");
  assert.ok(verify("{}", "k", ` ${signature.toUpperCase()}\n`));
});

const hello = createFunction({ id: "hello", trigger: { event: "demo.hello" }, handler: async () => "hi" });

for (const [problem, headers] of [
  ["missing", {}],
  ["wrong", { "x-durable-signature": "0".repeat(64) }],
  ["wrong", { "x-durable-signature": sign(invokeBody(), KEY + "-other") }],
] as const) {
  test(`a ${problem} signature is refused with a signed 401 by every handler form`, async () => {
    let ran = false;
    const spy = createFunction({ id: "hello", trigger: { event: "demo.hello" }, handler: () => (ran = true) });
    const handler = serve([spy], { signingKey: KEY });
    const server = await nodeServer(handler);
    try {
      const answers = [
        await fetchCall(handler, invokeBody(), headers),
        await expressCall(handler, { headers, body: invokeBody() }),
        await expressCall(handler, { headers, stream: [invokeBody()] }),
        await httpCall(server.url, invokeBody(), headers),
      ];
      for (const answer of answers) {
        assert.equal(answer.status, 401);
        assert.deepStrictEqual(answer.json(), { error: `${problem} x-durable-signature` });
        assert.equal(answer.headers["content-type"], "application/json");
        assert.ok(verify(answer.body, KEY, answer.headers["x-durable-signature"]));
      }
      assert.equal(ran, false, "the handler did not run");
    } finally {
      await server.close();
    }
  });
}

test("a body signed with the right key is accepted", async () => {
  const body = invokeBody();
  const answer = await fetchCall(serve([hello], { signingKey: KEY }), body, signed(body));
  assert.equal(answer.status, 200);
  assert.deepStrictEqual(answer.json(), { op: "done", data: "hi" });
});
