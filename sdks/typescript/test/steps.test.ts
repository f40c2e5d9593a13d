/** Step behaviour beyond the shared vectors: call counts, concurrency, swallowed stops, bad arguments, types. */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { createFunction, serve, type DurableEvent, type Handler, type Step } from "@durable/sdk";
import { fetchCall, KEY, signed } from "./helpers.js";

const NOW = 1767225600123; // 2026-01-01T00:00:00.123Z

/**
 * Dispatch one invoke of `handler` (through the Fetch handler, clock at NOW unless `clock` is false) and
 * return the op. Checkpointing is off unless `checkpoint` says otherwise: these tests are about one round.
 */
async function run(
  handler: Handler,
  steps: Record<string, unknown> = {},
  data: unknown = {},
  { clock = true, checkpoint = false }: { clock?: boolean; checkpoint?: boolean } = {},
): Promise<any> {
  const fn = createFunction({ id: "f", trigger: { event: "t" }, handler, checkpoint });
  const event = { id: "e1", name: "t", data, ts: NOW };
  const body = Buffer.from(JSON.stringify({ runId: "r1", functionId: "f", attempt: 2, event, steps }));
  if (clock) mock.timers.enable({ apis: ["Date"], now: NOW });
  try {
    const answer = await fetchCall(serve([fn], { signingKey: KEY }), body, signed(body));
    assert.equal(answer.status, 200);
    return answer.json();
  } finally {
    mock.timers.reset();
  }
}

test("only the first new step executes and memoized steps never run", async () => {
  const calls: string[] = [];
  const track = (name: string) => () => (calls.push(name), name);
  const handler: Handler = async ({ step }) => {
    for (const name of ["a", "b", "c"]) await step.run(name, track(name));
  };
  assert.deepStrictEqual(await run(handler, { a: { type: "run", data: "a" } }), { op: "step", id: "b", data: "b" });
  assert.deepStrictEqual(calls, ["b"]);
});

test("concurrent new steps (Promise.all) are reported together; a sleep among them is refused", async () => {
  const calls: string[] = [];
  const slow = async (name: string) => {
    calls.push(name);
    await new Promise((resolve) => setTimeout(resolve, 10));
    return name;
  };
  const handler: Handler = async ({ step }) =>
    Promise.all([step.run("one", () => slow("one")), step.run("two", () => slow("two")), step.sleep("three", "1s")]);
  const refused = await run(handler);
  assert.equal(refused.id, "three");
  assert.equal(refused.retryable, false);
  assert.equal(refused.message, "step 'three': a sleep cannot run in parallel with other steps (it was reached together with 'one', 'two'; await it before or after them)");
  assert.deepStrictEqual(calls, [], "nothing executes when the answer is refused");
  const memo = { one: { type: "run", data: "one" }, two: { type: "run", data: "two" } };
  assert.deepStrictEqual(await run(handler, memo), { op: "sleep", id: "three", until: "2026-01-01T00:00:01.123Z" });
  assert.deepStrictEqual(await run(handler, { ...memo, three: { type: "sleep" } }), { op: "done", data: ["one", "two", null] });
  const waiting: Handler = async ({ step }) => Promise.all([step.sendEvent("tell", { name: "x" }), step.waitForEvent("w", { event: "go", timeout: "1s" })]);
  assert.match((await run(waiting)).message, /^step 'w': a wait cannot run in parallel with other steps \(it was reached together with 'tell'/);
});

test("steps reached without awaiting them are reported together, and nothing after them runs", async () => {
  let after = false;
  const handler: Handler = async ({ step }) => {
    void step.run("a", () => 1);
    void step.run("b", () => 2);
    await step.run("c", () => 3);
    after = true;
    return "unreachable";
  };
  assert.deepStrictEqual(await run(handler), {
    op: "parallel",
    ops: [
      { op: "step", id: "a", data: 1 },
      { op: "step", id: "b", data: 2 },
      { op: "step", id: "c", data: 3 },
    ],
  });
  assert.equal(after, false);
});

test("a reached step wins even when the handler returns without awaiting it", async () => {
  const handler: Handler = ({ step }) => {
    void step.run("a", () => 1);
    return "done anyway";
  };
  assert.deepStrictEqual(await run(handler), { op: "step", id: "a", data: 1 });
  // Checkpointed, the step executes and the handler's return follows it, as a replay would answer.
  assert.deepStrictEqual(await run(handler, {}, {}, { checkpoint: true }), {
    op: "checkpoint",
    steps: [{ id: "a", data: 1 }],
    then: { op: "done", data: "done anyway" },
  });
});

test("neither catch nor finally runs past a planned step", async () => {
  const seen: string[] = [];
  const handler: Handler = async ({ step }) => {
    try {
      await step.sleep("nap", "1s");
      seen.push("after");
    } catch {
      seen.push("catch");
    } finally {
      seen.push("finally");
    }
  };
  assert.deepStrictEqual(await run(handler), { op: "sleep", id: "nap", until: "2026-01-01T00:00:01.123Z" });
  assert.deepStrictEqual(seen, []);
});

test("step results are typed and travel as JSON; undefined becomes null", async () => {
  const handler = async ({ step }: { step: Step }) => {
    const n: number = await step.run("n", async () => 41 + 1);
    const when = await step.run("when", () => new Date(0));
    const nothing: void = await step.run("void", () => undefined);
    const event: DurableEvent<{ by: string }> | null = await step.waitForEvent<{ by: string }>("w", { event: "x", timeout: "1s" });
    return { n, when, nothing, by: event?.data.by ?? null };
  };
  assert.deepStrictEqual(await run(handler as Handler), { op: "step", id: "n", data: 42 });
  const memo = { n: { type: "run", data: 42 } };
  assert.deepStrictEqual(await run(handler as Handler, memo), { op: "step", id: "when", data: "1970-01-01T00:00:00.000Z" });
  const more = { ...memo, when: { type: "run", data: "then" } };
  assert.deepStrictEqual(await run(handler as Handler, more), { op: "step", id: "void", data: null });
  const all = { ...more, void: { type: "run" }, w: { type: "wait", data: { id: "e", name: "x", data: { by: "ana" }, ts: 1 } } };
  assert.deepStrictEqual(await run(handler as Handler, all), { op: "done", data: { n: 42, when: "then", nothing: null, by: "ana" } });
  assert.deepStrictEqual(await run(async () => undefined), { op: "done", data: null });
});

test("the handler gets runId and attempt; an error without a message names its type", async () => {
  assert.deepStrictEqual(await run(({ runId, attempt }) => ({ runId, attempt })), { op: "done", data: { runId: "r1", attempt: 2 } });
  assert.deepStrictEqual(await run(() => Promise.reject(new TypeError())), { op: "error", id: null, message: "TypeError", retryable: true });
  assert.deepStrictEqual(await run(() => Promise.reject("plain string")), { op: "error", id: null, message: "plain string", retryable: true });
});

test("results without a JSON form fail without retries", async () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const op = await run(({ step }) => step.run("x", () => cyclic));
  assert.equal(op.id, "x");
  assert.equal(op.retryable, false);
  assert.match(op.message, /^step 'x' returned a value that is not JSON-serialisable: /);
  const fnResult = await run(() => () => 1);
  assert.deepStrictEqual(fnResult, {
    op: "error",
    id: null,
    message: "the handler returned a value that is not JSON-serialisable: a function has no JSON form",
    retryable: false,
  });
});

test("a step inside a step fails that step instead of hanging the invoke", async () => {
  const handler: Handler = ({ step }) => step.run("outer", () => step.run("inner", () => 1));
  assert.deepStrictEqual(await run(handler), {
    op: "error",
    id: "outer",
    message: "step 'inner' was reached inside step 'outer': steps cannot be nested",
    retryable: false,
  });
});

test("a step id that is a property of Object.prototype is still a new step", async () => {
  assert.deepStrictEqual(await run(({ step }) => step.run("constructor", () => 1)), { op: "step", id: "constructor", data: 1 });
});

test("the default clock is wall time", async () => {
  const before = Date.now();
  const op = await run(({ step }) => step.sleep("nap", 0), {}, {}, { clock: false });
  const until = Date.parse(op.until);
  assert.ok(before <= until && until <= Date.now(), op.until);
});

for (const [name, call, message] of [
  ["a bad sleep duration", (step: Step) => step.sleep("nap", "soon" as "1s"), "step.sleep('nap'): invalid duration 'soon'"],
  ["a missing timeout", (step: Step) => step.waitForEvent("w", { event: "x" } as never), "step.waitForEvent('w'): invalid duration undefined"],
  ["an empty event name", (step: Step) => step.waitForEvent("w", { event: "", timeout: "1s" }), "step.waitForEvent('w'): event must be a non-empty string"],
  ["a list as match", (step: Step) => step.waitForEvent("w", { event: "x", match: ["a"] as never, timeout: "1s" }), "step.waitForEvent('w'): match must be an object or null"],
  ["an empty step id", (step: Step) => step.run("", () => 1), "step id must be a non-empty string, got ''"],
] as const) {
  test(`${name} fails the run without retries`, async () => {
    assert.deepStrictEqual(await run(({ step }) => call(step)), { op: "error", id: null, message, retryable: false });
  });
}

test("bad step arguments throw at the call, so the handler can still catch them", async () => {
  const handler: Handler = async ({ step }) => {
    try {
      await step.sleep("nap", "soon" as "1s");
    } catch (error) {
      return `caught: ${(error as Error).name}`;
    }
  };
  assert.deepStrictEqual(await run(handler), { op: "done", data: "caught: NonRetryableError" });
  const unawaited: Handler = ({ step }) => {
    void step.sleep("nap", "soon" as "1s"); // not awaited: still fails the run, not the process
    return "unreachable";
  };
  assert.deepStrictEqual(await run(unawaited), { op: "error", id: null, message: "step.sleep('nap'): invalid duration 'soon'", retryable: false });
});
