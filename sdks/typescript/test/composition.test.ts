/**
 * Composition beyond the shared vectors: invoke (function objects, types, InvokeError), sendEvent,
 * parallel steps really executing together in one invoke, and onFailure served as `<id>:failure`.
 */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { createFunction, InvokeError, NonRetryableError, serve, type DurableFunction, type FailureData, type Handler } from "@durable/sdk";
import { fetchCall, KEY, signed } from "./helpers.js";

const NOW = 1767225600123; // 2026-01-01T00:00:00.123Z

/** Dispatch one invoke of `functionId` among `functions` (Fetch handler, clock at NOW) and return the op. */
async function dispatch(functions: DurableFunction<any, any>[], functionId: string, steps: Record<string, unknown> = {}, event: object = {}): Promise<any> {
  const body = Buffer.from(JSON.stringify({ runId: "r1", functionId, attempt: 1, event: { id: "e1", name: "t", data: {}, ts: NOW, ...event }, steps }));
  mock.timers.enable({ apis: ["Date"], now: NOW });
  try {
    const answer = await fetchCall(serve(functions, { signingKey: KEY }), body, signed(body));
    assert.equal(answer.status, 200, answer.body.toString());
    return answer.json();
  } finally {
    mock.timers.reset();
  }
}

const run = (handler: Handler, steps: Record<string, unknown> = {}) =>
  dispatch([createFunction({ id: "f", trigger: { event: "t" }, handler })], "f", steps);

const child = createFunction({ id: "charge-card", handler: async ({ event }) => ({ charged: event.data.cents as number }) });

test("invoke takes a function object or an id, data defaults to {}, timeout to none", async () => {
  assert.deepStrictEqual(await run(({ step }) => step.invoke("charge", { function: child, data: { cents: 5 }, timeout: 90_000 })), {
    op: "invoke",
    id: "charge",
    function: "charge-card",
    data: { cents: 5 },
    until: "2026-01-01T00:01:30.123Z",
  });
  assert.deepStrictEqual(await run(({ step }) => step.invoke("charge", { function: "charge-card" })), {
    op: "invoke",
    id: "charge",
    function: "charge-card",
    data: {},
    until: null,
  });
});

test("the child's output is typed from the function object", async () => {
  const handler: Handler = async ({ step }) => {
    const out = await step.invoke("charge", { function: child, data: { cents: 5 } });
    const cents: number = out.charged;
    const byId = await step.invoke<{ ok: boolean }>("other", { function: "other-fn" });
    const ok: boolean = byId.ok;
    return { cents, ok };
  };
  const memo = { charge: { type: "invoke", data: { charged: 5 } }, other: { type: "invoke", data: { ok: true } } };
  assert.deepStrictEqual(await run(handler, memo), { op: "done", data: { cents: 5, ok: true } });
});

test("InvokeError is catchable and carries message, reason, runId and functionId", async () => {
  let caught: unknown;
  const handler: Handler = async ({ step }) => {
    try {
      return await step.invoke("charge", { function: child });
    } catch (error) {
      caught = error;
      return "recovered";
    }
  };
  const error = { message: "the child was cancelled", reason: "cancelled", runId: "run-child", functionId: "charge-card" };
  assert.deepStrictEqual(await run(handler, { charge: { type: "invoke", data: null, error } }), { op: "done", data: "recovered" });
  assert.ok(caught instanceof InvokeError && caught instanceof Error);
  assert.deepStrictEqual(
    { name: caught.name, message: caught.message, reason: caught.reason, runId: caught.runId, functionId: caught.functionId },
    { name: "InvokeError", ...error },
  );
});

test("an InvokeError the handler does not catch fails the run without retries", async () => {
  const error = { message: "card declined", reason: "failed", runId: "run-child", functionId: "charge-card" };
  assert.deepStrictEqual(await run(({ step }) => step.invoke("charge", { function: child }), { charge: { type: "invoke", data: null, error } }), {
    op: "error",
    id: null,
    message: "card declined",
    retryable: false,
  });
  // Not awaited at all: the rejection is handled, the process does not crash, the handler's result stands.
  const unawaited: Handler = ({ step }) => {
    void step.invoke("charge", { function: child });
    return "went on";
  };
  assert.deepStrictEqual(await run(unawaited, { charge: { type: "invoke", data: null, error } }), { op: "done", data: "went on" });
});

test("sendEvent passes each event as given, data defaulting to {}, and resolves with the memo's ids", async () => {
  const handler: Handler = ({ step }) =>
    step.sendEvent("tell", [
      { name: "a", idempotencyKey: "k-1" },
      { name: "b", data: { n: 1 }, id: "b-1", ts: 5 },
    ]);
  assert.deepStrictEqual(await run(handler), {
    op: "send",
    id: "tell",
    events: [
      { name: "a", data: {}, idempotencyKey: "k-1" },
      { name: "b", data: { n: 1 }, id: "b-1", ts: 5 },
    ],
  });
  assert.deepStrictEqual(await run(handler, { tell: { type: "send", data: ["e1", "e2"] } }), { op: "done", data: ["e1", "e2"] });
});

for (const [name, call, message] of [
  ["an empty event name", (h: Parameters<Handler>[0]) => h.step.sendEvent("tell", { name: "" }), "step.sendEvent('tell'): event name must be a non-empty string, got ''"],
  ["an event without a name", (h: Parameters<Handler>[0]) => h.step.sendEvent("tell", [{ name: "a" }, { data: {} } as never]), "step.sendEvent('tell'): event name must be a non-empty string, got undefined"],
  ["an empty list", (h: Parameters<Handler>[0]) => h.step.sendEvent("tell", []), "step.sendEvent('tell'): send one event or a list of 1 to 100, got 0"],
  ["101 events", (h: Parameters<Handler>[0]) => h.step.sendEvent("tell", Array.from({ length: 101 }, () => ({ name: "a" }))), "step.sendEvent('tell'): send one event or a list of 1 to 100, got 101"],
  ["an invoke without a function", (h: Parameters<Handler>[0]) => h.step.invoke("c", {} as never), "step.invoke('c'): function must be a function made by createFunction or a function id, got undefined"],
  ["an invoke with list data", (h: Parameters<Handler>[0]) => h.step.invoke("c", { function: "x", data: [1] as never }), "step.invoke('c'): data must be an object, got [1]"],
  ["an invoke with a bad timeout", (h: Parameters<Handler>[0]) => h.step.invoke("c", { function: "x", timeout: "soon" as "1s" }), "step.invoke('c'): invalid duration 'soon'"],
] as const) {
  test(`${name} fails the run without retries`, async () => {
    assert.deepStrictEqual(await run((h) => call(h)), { op: "error", id: null, message, retryable: false });
  });
}

test("a memo of another type for an invoke or a send is the non-determinism error", async () => {
  assert.deepStrictEqual(await run(({ step }) => step.sendEvent("x", { name: "a" }), { x: { type: "invoke", data: 1 } }), {
    op: "error",
    id: "x",
    message: "step 'x' is recorded as type 'invoke', but the handler reached a 'send' step (the handler is not deterministic)",
    retryable: false,
  });
  // Reached together with new steps, it is answered alone and nothing executes.
  let executed = false;
  const together: Handler = ({ step }) => Promise.all([step.run("a", () => (executed = true)), step.invoke("x", { function: "c" })]);
  assert.equal((await run(together, { x: { type: "send", data: [] } })).id, "x");
  assert.equal(executed, false);
});

test("parallel run steps execute concurrently in one invoke", async () => {
  let running = 0;
  let most = 0;
  const branch = (n: number) => async () => {
    running += 1;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, 50));
    running -= 1;
    return n;
  };
  const handler: Handler = async ({ step }) => Promise.all([1, 2, 3, 4, 5].map((n) => step.run(`b${n}`, branch(n))));
  const started = performance.now();
  const op = await run(handler);
  const elapsed = performance.now() - started;
  assert.deepStrictEqual(op, { op: "parallel", ops: [1, 2, 3, 4, 5].map((n) => ({ op: "step", id: `b${n}`, data: n })) });
  assert.equal(most, 5, "all five branches were executing at once");
  assert.ok(elapsed < 200, `five 50 ms branches took ${elapsed} ms: not one after another`);
});

test("a failing branch is an error op with its id beside the others' results", async () => {
  const handler: Handler = ({ step }) =>
    Promise.all([
      step.run("ok", () => 1),
      step.run("bad", () => Promise.reject(new Error("boom"))),
      step.run("fatal", () => {
        throw new NonRetryableError("bad input");
      }),
    ]);
  assert.deepStrictEqual(await run(handler), {
    op: "parallel",
    ops: [
      { op: "step", id: "ok", data: 1 },
      { op: "error", id: "bad", message: "boom", retryable: true },
      { op: "error", id: "fatal", message: "bad input", retryable: false },
    ],
  });
});

test("branches that reach their step later (after memoized steps) are still reported together", async () => {
  const handler: Handler = ({ step }) =>
    Promise.all(
      ["a", "b"].map(async (name) => {
        const first = await step.run(`${name}-1`, () => `${name}1`);
        const second = await step.run(`${name}-2`, () => `${name}2`);
        return [first, second];
      }),
    );
  const memo = { "a-1": { type: "run", data: "a1" }, "b-1": { type: "run", data: "b1" } };
  assert.deepStrictEqual(await run(handler, memo), {
    op: "parallel",
    ops: [
      { op: "step", id: "a-2", data: "a2" },
      { op: "step", id: "b-2", data: "b2" },
    ],
  });
  const all = { ...memo, "a-2": { type: "run", data: "a2" }, "b-2": { type: "run", data: "b2" } };
  assert.deepStrictEqual(await run(handler, all), { op: "done", data: [["a1", "a2"], ["b1", "b2"]] });
});

test("repeated ids in parallel are suffixed in call order", async () => {
  const handler: Handler = ({ step }) => Promise.all([step.run("x", () => 0), step.sendEvent("x", { name: "e" }), step.run("x", () => 2)]);
  assert.deepStrictEqual(await run(handler, { "x:1": { type: "send", data: ["e1"] } }), {
    op: "parallel",
    ops: [
      { op: "step", id: "x", data: 0 },
      { op: "step", id: "x:2", data: 2 },
    ],
  });
});

test("Promise.race over invokes: the still-pending one is re-reported until it resolves", async () => {
  const handler: Handler = ({ step }) =>
    Promise.race([step.invoke("slow", { function: "slow-fn" }), step.invoke("fast", { function: "fast-fn" })]);
  assert.deepStrictEqual(await run(handler), {
    op: "parallel",
    ops: [
      { op: "invoke", id: "slow", function: "slow-fn", data: {}, until: null },
      { op: "invoke", id: "fast", function: "fast-fn", data: {}, until: null },
    ],
  });
  const fast = { fast: { type: "invoke", data: "fast" } };
  assert.deepStrictEqual(await run(handler, fast), { op: "invoke", id: "slow", function: "slow-fn", data: {}, until: null });
  assert.deepStrictEqual(await run(handler, { ...fast, slow: { type: "invoke", data: "slow" } }), { op: "done", data: "slow" });
});

test("onFailure is served as <id>:failure and gets the failure event", async () => {
  const seen: FailureData[] = [];
  const ship = createFunction({
    id: "ship",
    trigger: { event: "order.paid" },
    handler: () => "shipped",
    onFailure: async ({ event, step }) => {
      seen.push(event.data);
      return step.run("page-ops", () => `paged about ${event.data.runId}: ${event.data.error.message}`);
    },
  });
  const data: FailureData = {
    runId: "run-9",
    functionId: "ship",
    error: { message: "out of stock" },
    event: { id: "e0", name: "order.paid", data: { orderId: "o1" }, ts: 1 },
  };
  const event = { name: "durable/run.failed", data };
  assert.deepStrictEqual(await dispatch([ship], "ship:failure", {}, event), {
    op: "checkpoint", // the failure function checkpoints as its function does (by default)
    steps: [{ id: "page-ops", data: "paged about run-9: out of stock" }],
    then: { op: "done", data: "paged about run-9: out of stock" },
  });
  assert.deepStrictEqual(seen, [data]);
  assert.deepStrictEqual(await dispatch([ship], "ship", {}, {}), { op: "done", data: "shipped" });
  const listed = await fetchCall(serve([ship], { signingKey: KEY }), undefined, {}, "GET");
  assert.deepStrictEqual(listed.json(), { functions: ["ship", "ship:failure"] });
});
