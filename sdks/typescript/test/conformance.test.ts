/**
 * Every case of spec/conformance/cases.json, every vector of signature-vectors.json (v1) and every
 * `sign` and `verify` vector of signature-v2-vectors.json.
 *
 * The reference handlers follow spec/conformance/README.md; the Python and PHP SDKs implement the same
 * handlers and run the same cases. Each case runs with synchronous and with async step functions, through
 * the Fetch handler and through the Express-style (req, res) handler, with the SDK clock at `case.now`.
 * A case's `checkpoint` is the function's option as given; a case without one defines it with
 * checkpointing off, so the earlier cases keep their one op per invoke.
 */
import assert from "node:assert/strict";
import { after, describe, mock, test } from "node:test";
import {
  createFunction,
  InvokeError,
  NonRetryableError,
  serve,
  sign,
  signV2,
  verify,
  verifyV2,
  type CheckpointOptions,
  type Handler,
  type Sender,
} from "@durable/sdk";
import { answerProblem, expressCall, fetchCall, KEY, signed, spec, type Answer } from "./helpers.js";

interface Case {
  name: string;
  handler: string;
  invoke: { functionId: string; event: { name: string } };
  now: number;
  expect: Record<string, unknown>;
  messageIsPrefix?: boolean;
  checkpoint?: boolean | CheckpointOptions;
}
const CASES = spec<Case[]>("cases.json");
const VECTORS = spec<{ vectors: { key: string; body: string; signature: string }[] }>("signature-vectors.json").vectors;
interface SignVector {
  about: string;
  key: string;
  sender: Sender;
  t: number;
  n: string;
  r: string;
  body: string;
  mac: string;
  header: string;
}
interface VerifyVector {
  about: string;
  vector: number;
  keys: string[];
  now: number;
  replyTo: string | null;
  body?: string;
  header?: string;
  sender?: Sender;
  ok: boolean;
  reason?: string;
}
const V2 = spec<{ sign: SignVector[]; verify: VerifyVector[] }>("signature-v2-vectors.json");
const NOT_JSON = 10n; // a BigInt: JSON.stringify throws on it

/** A step function returning `value`, synchronously or after a turn of the event loop. */
type Later = <T>(value: T) => () => T | Promise<T>;
const now: Later = (value) => () => value;
const later: Later = (value) => async () => {
  await new Promise((resolve) => setImmediate(resolve));
  return value;
};
const boom = (error: Error) => (): never => {
  throw error;
};

function referenceHandlers(v: Later): Record<string, Handler> {
  return {
    three_steps: async ({ step }) => {
      const a = await step.run("a", v(1));
      const b = await step.run("b", v("two"));
      const c = await step.run("c", v({ three: 3 }));
      return { a, b, c };
    },
    sleep_then_done: async ({ step }) => {
      await step.sleep("nap", "1h");
      return "rested";
    },
    sleep_mixed: async ({ step }) => {
      await step.sleep("long", "1w2d3h4m5s6ms");
      await step.sleep("short", 1500);
      return "awake";
    },
    wait_approval: async ({ event, step }) => {
      const approval = await step.waitForEvent("approval", {
        event: "approval.received",
        match: { orderId: event.data.orderId },
        timeout: "2d",
      });
      if (approval === null) return { approved: false };
      return { approved: true, by: approval.data.by };
    },
    wait_any: async ({ step }) => ({ got: await step.waitForEvent("ping", { event: "ping.sent", timeout: 90_000 }) }),
    loop_fetch: async ({ step }) => {
      const results: number[] = [];
      for (const i of [0, 1, 2]) results.push(await step.run("fetch", v(i)));
      return results;
    },
    same_id_everywhere: async ({ step }) => {
      const r = await step.run("x", v("r"));
      await step.sleep("x", "1s");
      const w = await step.waitForEvent("x", { event: "go", timeout: "1m" });
      return { run: r, wait: w };
    },
    throws: async ({ step }) => {
      await step.run("explode", boom(new Error("boom")));
      return "unreachable";
    },
    throws_fatal: async ({ step }) => {
      await step.run("explode", boom(new NonRetryableError("bad input")));
      return "unreachable";
    },
    handler_throws: async ({ event, step }) => {
      await step.run("before", v("ok"));
      throw event.data.fatal ? new NonRetryableError(event.data.message) : new Error(event.data.message);
    },
    guarded_step: async ({ event, step }) => {
      try {
        return await step.run("guarded", event.data.fail ? boom(new Error("boom")) : v("ok"));
      } catch {
        return "swallowed";
      }
    },
    non_serialisable: async ({ step }) => step.run("bad", v(NOT_JSON)),
    non_serialisable_result: async () => NOT_JSON,
    batch_sum: async ({ event, step }) => {
      const items = event.data as { data: { n: number } }[];
      const total = await step.run("sum", v(items.reduce((sum, item) => sum + item.data.n, 0)));
      return { count: items.length, sum: total };
    },
    cron_echo: async ({ event }) => event.data.cron,
    invoke_child: async ({ event, step }) => {
      try {
        const r = await step.invoke("charge", { function: "charge-card", data: { orderId: event.data.orderId }, timeout: "1h" });
        return { charged: r };
      } catch (error) {
        if (!(error instanceof InvokeError)) throw error;
        return { failed: error.message, reason: error.reason, child: error.runId };
      }
    },
    invoke_forever: async ({ step }) => step.invoke("child", { function: "child-fn", data: {} }),
    send_events: async ({ event, step }) => {
      const ids = await step.sendEvent("notify", [
        { name: "order.shipped", data: { orderId: event.data.orderId } },
        { name: "audit", data: {}, id: `audit-${event.id}` },
      ]);
      const one = await step.sendEvent("single", { name: "ping.sent", data: { n: 1 } });
      return { ids, one };
    },
    parallel_two: async ({ step }) => {
      const [a, b] = await Promise.all([step.run("a", v(1)), step.run("b", v(2))]);
      return step.run("c", v(a + b));
    },
    parallel_mixed: async ({ step }) => {
      const [x, child, ids] = await Promise.all([
        step.run("x", v("x")),
        step.invoke("kid", { function: "child-fn", data: { n: 1 } }),
        step.sendEvent("tell", { name: "told", data: {} }),
      ]);
      return { x, child, ids };
    },
    parallel_error: async ({ step }) => {
      await Promise.all([step.run("ok", v(1)), step.run("bad", boom(new Error("boom")))]);
      return "unreachable";
    },
    parallel_sleep: async ({ step }) => {
      await Promise.all([step.run("a", v(1)), step.sleep("nap", "1m")]);
      return "unreachable";
    },
    steps_then_sleep: async ({ step }) => {
      const a = await step.run("a", v(1));
      const b = await step.run("b", v(a + 1));
      await step.sleep("nap", "1h");
      return step.run("c", v(b + 1));
    },
    step_then_wait: async ({ step }) => {
      const a = await step.run("a", v("x"));
      const w = await step.waitForEvent("w", { event: "go", timeout: "1m" });
      return { a, w };
    },
    step_then_invoke: async ({ step }) => {
      const a = await step.run("a", v(1));
      return step.invoke("kid", { function: "child-fn", data: { n: a } });
    },
    step_then_send: async ({ step }) => {
      const a = await step.run("a", v(1));
      return step.sendEvent("tell", { name: "told", data: { a } });
    },
    step_then_parallel: async ({ step }) => {
      const a = await step.run("a", v(1));
      const [b, c] = await Promise.all([step.run("b", v(2)), step.run("c", v(3))]);
      return a + b + c;
    },
    step_then_throw: async ({ step }) => {
      await step.run("ok", v(1));
      await step.run("explode", boom(new Error("boom")));
      return "unreachable";
    },
  };
}

function check(answer: Answer, request: Record<string, string>, c: Case): void {
  assert.equal(answer.status, 200, answer.body.toString());
  assert.equal(answerProblem(answer, request), null, "the answer is signed v2 (bound to the invoke) and v1");
  const op = answer.json();
  const expect = { ...c.expect };
  if (c.messageIsPrefix) {
    assert.ok(op.message.startsWith(expect.message), op.message);
    expect.message = op.message;
  }
  assert.deepStrictEqual(op, expect); // tells true from 1, and a present null from an absent key
}

test("the cases cover every op, and every reference handler has a case", () => {
  assert.deepStrictEqual(new Set(CASES.map((c) => c.expect.op)), new Set(["step", "sleep", "wait", "done", "error", "invoke", "send", "parallel", "checkpoint"]));
  assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length);
  assert.deepStrictEqual(new Set(CASES.map((c) => c.handler)), new Set(Object.keys(referenceHandlers(now))));
});

for (const [style, v] of [["sync step functions", now], ["async step functions", later]] as const) {
  for (const transport of ["fetch", "express"] as const) {
    describe(`cases.json, ${style}, ${transport} handler`, () => {
      const handlers = referenceHandlers(v);
      for (const c of CASES) {
        test(c.name, async () => {
          const handler = handlers[c.handler];
          assert.ok(handler, `no reference handler ${c.handler}`);
          const fn = createFunction({ id: c.invoke.functionId, trigger: { event: c.invoke.event.name }, handler, checkpoint: c.checkpoint ?? false });
          const endpoint = serve([fn], { signingKey: KEY });
          const body = Buffer.from(JSON.stringify(c.invoke));
          mock.timers.enable({ apis: ["Date"], now: c.now });
          try {
            const headers = signed(body); // stamped with the SDK clock, c.now
            const answer = transport === "fetch" ? await fetchCall(endpoint, body, headers) : await expressCall(endpoint, { headers, body });
            check(answer, headers, c);
          } finally {
            mock.timers.reset();
          }
        });
      }
    });
  }
}

describe("signature-vectors.json", () => {
  for (const [i, vector] of VECTORS.entries()) {
    test(`vector ${i}: ${vector.key}`, async () => {
      const body = Buffer.from(vector.body, "utf8");
      assert.equal(sign(body, vector.key), vector.signature);
      assert.equal(sign(vector.body, vector.key), vector.signature); // a string is signed as its UTF-8 bytes
      assert.ok(verify(body, vector.key, vector.signature));
      assert.ok(verify(body, vector.key, vector.signature.toUpperCase())); // hex case is not significant
      assert.ok(!verify(Buffer.concat([body, Buffer.from(" ")]), vector.key, vector.signature));
      assert.ok(!verify(body, vector.key + "x", vector.signature));
      assert.ok(!verify(body, vector.key, vector.signature.slice(0, -1) + (vector.signature.endsWith("0") ? "1" : "0")));

      // The served endpoint requires v2: v1 alone, right or wrong, is a 401 (signed v1) and says so;
      // with no signature at all the 401 names the missing v2 header.
      const endpoint = serve([], { signingKey: vector.key });
      const v1Only = [{ "x-durable-signature": vector.signature }, { "x-durable-signature": [...vector.signature].reverse().join("") }];
      for (const headers of [{}, ...v1Only] as Record<string, string>[]) {
        for (const answer of [await fetchCall(endpoint, body, headers), await expressCall(endpoint, { headers, body })]) {
          assert.equal(answer.status, 401);
          const expected = "x-durable-signature" in headers ? /^this SDK requires signatures v2/ : /^x-durable-signature-v2 refused \(malformed\): the header is missing$/;
          assert.match(answer.json().error, expected);
          assert.ok(verify(answer.body, vector.key, answer.headers["x-durable-signature"]));
          assert.equal(answer.headers["x-durable-signature-v2"], undefined, "a refusal is not v2-signed");
        }
      }
    });
  }
});

describe("signature-v2-vectors.json: sign", () => {
  for (const [i, v] of V2.sign.entries()) {
    test(`sign ${i}: ${v.about}`, () => {
      const options = { sender: v.sender, t: v.t, n: v.n, r: v.r };
      assert.equal(signV2(v.body, v.key, options), v.header);
      assert.equal(signV2(Buffer.from(v.body, "utf8"), v.key, options), v.header); // a string is signed as its UTF-8 bytes
      assert.ok(v.header.endsWith(`,s=${v.mac}`));
    });
  }
});

describe("signature-v2-vectors.json: verify", () => {
  test("the vectors refuse for every reason and accept", () => {
    assert.deepStrictEqual(new Set(V2.verify.map((v) => (v.ok ? "ok" : v.reason))), new Set(["ok", "malformed", "stale", "mac", "reply"]));
  });
  for (const [i, v] of V2.verify.entries()) {
    test(`verify ${i}: ${v.about}`, () => {
      const base = V2.sign[v.vector];
      assert.ok(base, `no sign vector ${v.vector}`);
      const body = v.body ?? base.body;
      const header = v.header ?? base.header;
      const result = verifyV2(Buffer.from(body, "utf8"), header, { keys: v.keys, sender: v.sender ?? base.sender, now: v.now, replyTo: v.replyTo });
      if (v.ok) {
        assert.ok(result.ok, JSON.stringify(result));
        assert.deepStrictEqual(result, { ok: true, t: base.t, n: base.n, r: base.r === "" ? null : base.r });
      } else {
        assert.ok(!result.ok, "refused");
        assert.equal(result.reason, v.reason);
        assert.ok(result.message.startsWith(`x-durable-signature-v2 refused (${v.reason}): `), result.message);
      }
    });
  }

  // The served endpoint verifies an invoke as a request from the engine: of the sign vectors it accepts
  // the engine's request (its body names no served function: 404, signed back to that nonce) and refuses
  // the others: the app's own requests (mac) and the engine's answers (reply).
  for (const [i, v] of V2.sign.entries()) {
    test(`sign ${i} sent to the served endpoint at its own t: ${v.about}`, async () => {
      const endpoint = serve([], { signingKey: v.key, now: () => v.t });
      const headers = { "x-durable-signature-v2": v.header };
      const answer = await fetchCall(endpoint, Buffer.from(v.body, "utf8"), headers);
      if (v.sender === "engine" && v.r === "") {
        assert.equal(answer.status, 404, answer.body.toString());
        assert.equal(answerProblem(answer, headers, v.key, v.t), null);
      } else {
        assert.equal(answer.status, 401);
        assert.match(answer.json().error, v.sender === "app" ? /refused \(mac\)/ : /refused \(reply\)/);
      }
    });
  }
});

after(() => mock.timers.reset());
