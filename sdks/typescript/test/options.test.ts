/** Definition-time validation of every option; errors name the function and the field. Durations. */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { createFunction, serve, type Duration, type FunctionOptions } from "@durable/sdk";
import { fetchCall, KEY, signed } from "./helpers.js";

const handler = async () => null;
const define = (options: Partial<FunctionOptions> & Record<string, unknown>) =>
  createFunction({ id: "hello", trigger: { event: "demo.hello" }, handler, ...options } as FunctionOptions & { handler: typeof handler });

/** The `until` of `step.sleep("nap", duration)` with the clock at 0: the duration in milliseconds. */
async function sleepMs(duration: Duration): Promise<number> {
  const fn = createFunction({ id: "s", trigger: { event: "t" }, handler: ({ step }) => step.sleep("nap", duration) });
  const body = Buffer.from(JSON.stringify({ runId: "r", functionId: "s", attempt: 1, event: { id: "e", name: "t", data: {}, ts: 0 }, steps: {} }));
  mock.timers.enable({ apis: ["Date"], now: 0 });
  try {
    const op = (await fetchCall(serve([fn], { signingKey: KEY }), body, signed(body))).json();
    assert.equal(op.op, "sleep", JSON.stringify(op));
    return Date.parse(op.until);
  } finally {
    mock.timers.reset();
  }
}

for (const [value, ms] of [
  ["500ms", 500],
  ["90s", 90_000],
  ["5m", 300_000],
  ["12h", 43_200_000],
  ["30d", 2_592_000_000],
  ["1w", 604_800_000],
  ["1h30m", 5_400_000],
  ["1m30s250ms", 90_250],
  [0, 0],
  [1500, 1500],
] as const) {
  test(`duration ${JSON.stringify(value)} is ${ms} ms`, async () => {
    assert.equal(await sleepMs(value), ms);
    if (ms > 0) assert.deepStrictEqual(define({ throttle: { limit: 1, period: value } }).definition.throttle, { limit: 1, period: value });
  });
}

for (const value of ["abc", "", "5", "m5", "1.5h", "5 m", "-1s", "1y", -1, 1.5, true, null, Number.NaN, Infinity]) {
  test(`invalid duration ${String(value)}`, () => {
    assert.throws(() => define({ throttle: { limit: 1, period: value as Duration } }), {
      message: /^function 'hello': throttle\.period: invalid duration /,
    });
  });
}

test("the wire form keeps values as written, without the handler", () => {
  const fn = define({
    name: "Hello",
    retries: 0,
    concurrency: { limit: 2, key: "tenantId" },
    priority: { key: "user.rank" },
    throttle: { limit: 1, period: 90_000 },
    rateLimit: { limit: 5, period: "1h30m", key: "user.id" },
    debounce: { period: "5s", timeout: "1m" },
    batch: { maxSize: 3, timeout: "2s" },
  });
  assert.equal(fn.id, "hello");
  assert.equal(fn.handler, handler);
  assert.deepStrictEqual(fn.definition, {
    id: "hello",
    trigger: { event: "demo.hello" },
    name: "Hello",
    retries: 0,
    concurrency: { limit: 2, key: "tenantId" },
    throttle: { limit: 1, period: 90_000 },
    rateLimit: { limit: 5, period: "1h30m", key: "user.id" },
    debounce: { period: "5s", timeout: "1m" },
    batch: { maxSize: 3, timeout: "2s" },
    priority: { key: "user.rank" },
  });
  assert.deepStrictEqual(define({ trigger: { cron: "0 3 * * *" }, priority: -5 }).definition, {
    id: "hello",
    trigger: { cron: "0 3 * * *" },
    priority: -5,
  });
  assert.deepStrictEqual(define({ name: undefined, concurrency: { limit: 1, key: undefined } }).definition, {
    id: "hello",
    trigger: { event: "demo.hello" },
    concurrency: { limit: 1 },
  });
  assert.ok(Object.isFrozen(fn) && Object.isFrozen(fn.definition));
});

for (const [options, message] of [
  [{ trigger: { event: "" } }, "trigger.event: must be a non-empty string, got ''"],
  [{ trigger: { cron: 5 } }, "trigger.cron: must be a non-empty string, got 5"],
  [{ trigger: { event: "a", cron: "* * * * *" } }, "trigger: must be {event: name}, {cron: expr} or null"],
  [{ trigger: { topic: "a" } }, "trigger: must be {event: name}, {cron: expr} or null"],
  [{ trigger: "demo.hello" }, "trigger: must be {event: name}, {cron: expr} or null, got 'demo.hello'"],
  [{ name: "" }, "name: must be a non-empty string"],
  [{ retries: -1 }, "retries: must be an integer >= 0, got -1"],
  [{ retries: true }, "retries: must be an integer >= 0, got true"],
  [{ retries: 1.5 }, "retries: must be an integer >= 0, got 1.5"],
  [{ concurrency: 2 }, "concurrency: must be an object, got 2"],
  [{ concurrency: {} }, "concurrency.limit: is required"],
  [{ concurrency: { limit: 0 } }, "concurrency.limit: must be an integer >= 1, got 0"],
  [{ concurrency: { limit: 1, key: "a..b" } }, "concurrency.key: must be a dotted path into event.data, got 'a..b'"],
  [{ concurrency: { limit: 1, scope: "fn" } }, "concurrency.scope: unknown option (expected limit, key)"],
  [{ priority: 1.5 }, "priority: must be an integer, got 1.5"],
  [{ priority: { key: "" } }, "priority.key: must be a dotted path"],
  [{ throttle: { limit: 1, period: "abc" } }, "throttle.period: invalid duration 'abc'"],
  [{ throttle: { limit: 1 } }, "throttle.period: is required"],
  [{ throttle: { limit: 1, period: "0s" } }, "throttle.period: must be a positive duration, got '0s'"],
  [{ rateLimit: { limit: "5", period: "1m" } }, "rateLimit.limit: must be an integer >= 1, got '5'"],
  [{ rateLimit: { limit: 5, period: -1 } }, "rateLimit.period: invalid duration -1"],
  [{ debounce: { period: "5s", timeout: "soon" } }, "debounce.timeout: invalid duration 'soon'"],
  [{ debounce: { timeout: "5s" } }, "debounce.period: is required"],
  [{ batch: { maxSize: 0, timeout: "1s" } }, "batch.maxSize: must be an integer >= 1, got 0"],
  [{ batch: { maxSize: 2 } }, "batch.timeout: is required"],
  [{ batch: { max_size: 2, timeout: "1s" } }, "batch.max_size: unknown option (expected maxSize, timeout, key)"],
  [{ rate_limit: { limit: 1, period: "1s" } }, "rate_limit: unknown option (expected id, name, trigger, handler, retries, priority, concurrency, throttle, rateLimit, debounce, batch, singleton, onFailure, cancelOn, idempotency, checkpoint)"],
  [{ on_failure: handler }, "on_failure: unknown option (expected id, name, trigger, handler,"],
  [{ onFailure: "notify-ops" }, "onFailure: must be a handler ({ event, step }) => …, got 'notify-ops'"],
  [{ cancelOn: { event: "x" } }, 'cancelOn: must be a list of at most 10 {event, match?, timeout?}, got {"event":"x"}'],
  [{ cancelOn: Array.from({ length: 11 }, () => ({ event: "x" })) }, "cancelOn: must be a list of at most 10"],
  [{ cancelOn: ["order.cancelled"] }, "cancelOn[0]: must be an object, got 'order.cancelled'"],
  [{ cancelOn: [{ match: "orderId" }] }, "cancelOn[0].event: is required"],
  [{ cancelOn: [{ event: "" }] }, "cancelOn[0].event: must be a non-empty string, got ''"],
  [{ cancelOn: [{ event: "a" }, { event: "b", match: "a..b" }] }, "cancelOn[1].match: must be a dotted path into event.data, got 'a..b'"],
  [{ cancelOn: [{ event: "a", timeout: "soon" }] }, "cancelOn[0].timeout: invalid duration 'soon'"],
  [{ cancelOn: [{ event: "a", timeout: 0 }] }, "cancelOn[0].timeout: must be a positive duration, got 0"],
  [{ cancelOn: [{ event: "a", if: "x" }] }, "cancelOn[0].if: unknown option (expected event, match, timeout)"],
  [{ idempotency: "" }, "idempotency: must be a dotted path into event.data, got ''"],
  [{ idempotency: { key: "orderId" } }, 'idempotency: must be a dotted path into event.data, got {"key":"orderId"}'],
  [{ singleton: "userId" }, "singleton: must be an object, got 'userId'"],
  [{ singleton: { key: "userId" } }, "singleton.mode: is required"],
  [{ singleton: { key: "userId", mode: "queue" } }, "singleton.mode: must be 'skip' or 'cancel', got 'queue'"],
  [{ singleton: { mode: "skip", limit: 1 } }, "singleton.limit: unknown option (expected key, mode)"],
  [{ singleton: { key: " ", mode: "skip" } }, "singleton.key: must be a dotted path into event.data, got ' '"],
  [{ checkpoint: "yes" }, "checkpoint: must be true, false or {maxSteps?, maxBytes?, maxMs?}, got 'yes'"],
  [{ checkpoint: null }, "checkpoint: must be true, false or {maxSteps?, maxBytes?, maxMs?}, got null"],
  [{ checkpoint: [100] }, "checkpoint: must be true, false or {maxSteps?, maxBytes?, maxMs?}, got [100]"],
  [{ checkpoint: 100 }, "checkpoint: must be true, false or {maxSteps?, maxBytes?, maxMs?}, got 100"],
  [{ checkpoint: { maxSteps: 0 } }, "checkpoint.maxSteps: must be an integer from 1 to 1000, got 0"],
  [{ checkpoint: { maxSteps: 1001 } }, "checkpoint.maxSteps: must be an integer from 1 to 1000, got 1001"],
  [{ checkpoint: { maxSteps: "5" } }, "checkpoint.maxSteps: must be an integer from 1 to 1000, got '5'"],
  [{ checkpoint: { maxBytes: 1.5 } }, "checkpoint.maxBytes: must be an integer from 1 to 4194304, got 1.5"],
  [{ checkpoint: { maxBytes: -1 } }, "checkpoint.maxBytes: must be an integer from 1 to 4194304, got -1"],
  [{ checkpoint: { maxBytes: 4194305 } }, "checkpoint.maxBytes: must be an integer from 1 to 4194304, got 4194305"],
  [{ checkpoint: { maxMs: "1s" } }, "checkpoint.maxMs: must be an integer >= 1, got '1s'"],
  [{ checkpoint: { maxMs: 0 } }, "checkpoint.maxMs: must be an integer >= 1, got 0"],
  [{ checkpoint: { max_steps: 2 } }, "checkpoint.max_steps: unknown option (expected maxSteps, maxBytes, maxMs)"],
] as const) {
  test(`error names function and field: ${message}`, () => {
    assert.throws(
      () => define(options as Record<string, unknown>),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.ok(error.message.startsWith(`function 'hello': ${message}`), error.message);
        return true;
      },
    );
  });
}

test("the id and the handler are checked", () => {
  assert.throws(() => createFunction({ id: "", trigger: { event: "a" }, handler }), { message: "function id must be a non-empty string, got ''" });
  assert.throws(() => createFunction({ id: "hello", trigger: { event: "a" } } as never), { message: "function 'hello': the handler must be a function" });
});

test("durations are typed: numbers and unit strings compile, other strings do not", () => {
  const ok: Duration[] = [500, "500ms", "90s", "5m", "12h", "30d", "1w", "1h30m", "1w2d3h4m5s6ms"];
  // @ts-expect-error: a bare word is no duration
  const bad: Duration = "soon";
  assert.equal(ok.length, 9);
  assert.equal(bad, "soon");
});

test("composition options go on the wire under their own names, durations as written", () => {
  const fn = define({
    cancelOn: [{ event: "order.cancelled", match: "orderId", timeout: "7d" }, { event: "user.deleted", timeout: 60_000 }, { event: "all.stop" }],
    idempotency: "order.id",
    singleton: { key: "userId", mode: "skip" },
  });
  assert.deepStrictEqual(fn.definition, {
    id: "hello",
    trigger: { event: "demo.hello" },
    cancelOn: [{ event: "order.cancelled", match: "orderId", timeout: "7d" }, { event: "user.deleted", timeout: 60_000 }, { event: "all.stop" }],
    idempotency: "order.id",
    singleton: { key: "userId", mode: "skip" },
  });
  assert.deepStrictEqual(define({ singleton: { mode: "cancel" } }).definition.singleton, { mode: "cancel" });
  assert.equal(fn.onFailure, undefined);
});

test("a function without a trigger is synced with trigger null", () => {
  const child = createFunction({ id: "child", handler });
  assert.deepStrictEqual(child.definition, { id: "child", trigger: null });
  assert.deepStrictEqual(createFunction({ id: "child", trigger: null, retries: 1, handler }).definition, { id: "child", trigger: null, retries: 1 });
});

test("onFailure makes the failure function <id>:failure, without a trigger or other options", () => {
  const notify = async () => "notified";
  const fn = define({ name: "Hello", retries: 2, concurrency: { limit: 1 }, onFailure: notify });
  assert.equal(fn.definition.onFailure, "hello:failure");
  assert.ok(fn.onFailure);
  assert.equal(fn.onFailure.id, "hello:failure");
  assert.equal(fn.onFailure.handler, notify);
  assert.deepStrictEqual(fn.onFailure.definition, { id: "hello:failure", name: "Hello (failure)", trigger: null });
  assert.deepStrictEqual(define({ onFailure: notify }).onFailure?.definition, { id: "hello:failure", name: "hello (failure)", trigger: null });
  assert.ok(Object.isFrozen(fn) && Object.isFrozen(fn.onFailure) && Object.isFrozen(fn.onFailure.definition));
});

test("with onFailure the id is at most 120 characters", () => {
  const long = "f".repeat(121);
  assert.throws(() => createFunction({ id: long, trigger: { event: "a" }, handler, onFailure: handler }), {
    message: `function '${long}': onFailure: the id is 121 characters: at most 120 leave room for its failure function '<id>:failure'`,
  });
  assert.equal(createFunction({ id: "f".repeat(120), trigger: { event: "a" }, handler, onFailure: handler }).onFailure?.id, `${"f".repeat(120)}:failure`);
  assert.equal(createFunction({ id: long, trigger: { event: "a" }, handler }).id, long, "without onFailure there is no such limit");
});

test("composition options are typed", () => {
  const options: FunctionOptions = {
    id: "typed",
    cancelOn: [{ event: "x", match: "a.b", timeout: "1h" }],
    idempotency: "orderId",
    singleton: { mode: "skip" },
    onFailure: ({ event }) => `${event.data.functionId}: ${event.data.error.message} (${event.data.event.name})`,
  };
  // @ts-expect-error: the mode is skip or cancel
  const bad: FunctionOptions = { id: "x", singleton: { mode: "queue" } };
  assert.equal(options.id, "typed");
  assert.equal(bad.id, "x");
});

test("checkpoint: on by default with its bounds, tuned or off, and never in the wire form", () => {
  const defaults = { maxSteps: 100, maxBytes: 1_048_576, maxMs: 1000 };
  assert.deepStrictEqual(define({}).checkpoint, defaults);
  assert.deepStrictEqual(define({ checkpoint: true }).checkpoint, defaults);
  assert.deepStrictEqual(define({ checkpoint: {} }).checkpoint, defaults);
  assert.deepStrictEqual(define({ checkpoint: { maxSteps: 2, maxMs: undefined } }).checkpoint, { ...defaults, maxSteps: 2 });
  assert.deepStrictEqual(define({ checkpoint: { maxSteps: 1000, maxBytes: 1, maxMs: 5 } }).checkpoint, { maxSteps: 1000, maxBytes: 1, maxMs: 5 });
  assert.equal(define({ checkpoint: false }).checkpoint, false);
  for (const checkpoint of [true, false, { maxSteps: 7 }])
    assert.deepStrictEqual(define({ checkpoint, retries: 1 }).definition, { id: "hello", trigger: { event: "demo.hello" }, retries: 1 });
  const fn = define({ checkpoint: { maxBytes: 10 }, onFailure: handler });
  assert.ok(Object.isFrozen(fn.checkpoint));
  assert.deepStrictEqual(fn.onFailure?.checkpoint, { ...defaults, maxBytes: 10 }, "the failure function checkpoints like its function");
  assert.deepStrictEqual(fn.onFailure?.definition, { id: "hello:failure", name: "hello (failure)", trigger: null });
  const typed: FunctionOptions = { id: "typed", checkpoint: { maxMs: 500 } };
  // @ts-expect-error: the bounds are numbers of milliseconds, steps and bytes
  const bad: FunctionOptions = { id: "x", checkpoint: { maxMs: "1s" } };
  assert.equal(typed.id, "typed");
  assert.equal(bad.id, "x");
});
