/**
 * Checkpointing beyond the shared vectors (docs/protocol.md, "Checkpointing"): on by default, off with
 * `checkpoint: false`, the maxMs bound on a fake and on the real monotonic clock, maxBytes in UTF-8 bytes,
 * the JSON round trip the code after a step sees, the attempt, and a seeded property test over random
 * JSON results driven through whole runs the way the engine stores them.
 */
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { mock, test } from "node:test";
import { createFunction, serve, type CheckpointOptions, type DurableFunction, type Handler } from "@durable/sdk";
import { fetchCall, KEY, signed } from "./helpers.js";

const NOW = 1767225600123; // 2026-01-01T00:00:00.123Z
type Memo = { type: string; data: unknown };
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const define = (handler: Handler, checkpoint?: boolean | CheckpointOptions) =>
  createFunction(checkpoint === undefined ? { id: "f", trigger: { event: "t" }, handler } : { id: "f", trigger: { event: "t" }, handler, checkpoint });

/** One invoke of `fn` with the memoized `steps` (Fetch handler, Date at NOW); resolves with the op. */
async function dispatch(fn: DurableFunction<any, any>, steps: Record<string, Memo> = {}, attempt = 1): Promise<any> {
  const body = Buffer.from(JSON.stringify({ runId: "r1", functionId: fn.id, attempt, event: { id: "e1", name: "t", data: {}, ts: NOW }, steps }));
  mock.timers.enable({ apis: ["Date"], now: NOW });
  try {
    const answer = await fetchCall(serve([fn], { signingKey: KEY }), body, signed(body));
    assert.equal(answer.status, 200, answer.body.toString());
    return answer.json();
  } finally {
    mock.timers.reset();
  }
}

/**
 * Run `fn` to its end as the engine would: store every step an answer carries (a checkpoint's steps, then
 * its `then`), invoke again, until `done`. Resolves with every answer and the run's output.
 */
async function drive(fn: DurableFunction<any, any>, limit = 200): Promise<{ answers: any[]; output: unknown }> {
  const steps: Record<string, Memo> = {};
  const answers: any[] = [];
  const store = (op: any): boolean => {
    assert.ok(!Object.hasOwn(steps, op.id ?? ""), `step ${op.id} answered twice`);
    if (op.op === "step") steps[op.id] = { type: "run", data: op.data };
    else if (op.op === "sleep") steps[op.id] = { type: "sleep", data: null };
    else if (op.op === "done") return true;
    else assert.fail(`unexpected op ${JSON.stringify(op)}`);
    return false;
  };
  while (answers.length < limit) {
    const op = await dispatch(fn, steps);
    answers.push(op);
    if (op.op !== "checkpoint") {
      if (store(op)) return { answers, output: op.data };
      continue;
    }
    assert.ok(op.steps.length >= 1 && !(op.steps.length === 1 && op.then === null), "a one-step checkpoint without then is sent as a step op");
    for (const step of op.steps) store({ op: "step", ...step });
    if (op.then !== null && store(op.then)) return { answers, output: op.then.data };
  }
  throw new Error(`no done after ${limit} invokes`);
}

/** A handler of `count` sequential steps `s0`, `s1` …, each returning `result(i)`, recording its calls. */
function chain(count: number, calls: string[], result: (i: number) => unknown = (i) => i): Handler {
  return async ({ step }) => {
    const seen: unknown[] = [];
    for (let i = 0; i < count; i++) seen.push(await step.run(`s${i}`, () => (calls.push(`s${i}`), result(i))));
    return seen;
  };
}

test("checkpointing is on by default: a 3-step run is one invoke, each step executed once", async () => {
  const calls: string[] = [];
  const { answers, output } = await drive(define(chain(3, calls)));
  assert.deepStrictEqual(answers, [
    {
      op: "checkpoint",
      steps: [
        { id: "s0", data: 0 },
        { id: "s1", data: 1 },
        { id: "s2", data: 2 },
      ],
      then: { op: "done", data: [0, 1, 2] },
    },
  ]);
  assert.deepStrictEqual(output, [0, 1, 2]);
  assert.deepStrictEqual(calls, ["s0", "s1", "s2"]);
  const twenty = await drive(define(chain(20, [])));
  assert.equal(twenty.answers.length, 1, "a 20-step run is one invoke with the default bounds");
  assert.equal(twenty.answers[0].steps.length, 20);
});

test("checkpoint: false answers one step per invoke: N steps take N + 1 invokes", async () => {
  const calls: string[] = [];
  const { answers, output } = await drive(define(chain(3, calls), false));
  assert.deepStrictEqual(answers, [
    { op: "step", id: "s0", data: 0 },
    { op: "step", id: "s1", data: 1 },
    { op: "step", id: "s2", data: 2 },
    { op: "done", data: [0, 1, 2] },
  ]);
  assert.deepStrictEqual(output, [0, 1, 2]);
  assert.deepStrictEqual(calls, ["s0", "s1", "s2"]);
});

test("maxSteps: each invoke stops after that many steps, with then null", async () => {
  const { answers } = await drive(define(chain(5, []), { maxSteps: 2 }));
  assert.deepStrictEqual(
    answers.map((op) => [op.op, op.steps?.map((s: { id: string }) => s.id), op.then?.op ?? op.then]),
    [
      ["checkpoint", ["s0", "s1"], null],
      ["checkpoint", ["s2", "s3"], null],
      ["checkpoint", ["s4"], "done"],
    ],
  );
  assert.equal((await drive(define(chain(150, [])))).answers[0].steps.length, 100, "maxSteps defaults to 100");
});

test("maxMs on a fake monotonic clock: counted from the invoke's arrival, checked after each step", async () => {
  let clock = 5_000;
  const now = mock.method(performance, "now", () => clock);
  try {
    const calls: string[] = [];
    const slow: Handler = async ({ step }) => {
      for (let i = 0; i < 10; i++) await step.run(`s${i}`, () => ((clock += 400), calls.push(`s${i}`), i));
      return "done";
    };
    // 400, 800, 1200 ms: the default 1000 ms bound is reached by the third step.
    const op = await dispatch(define(slow));
    assert.deepStrictEqual(op.steps.map((s: { id: string }) => s.id), ["s0", "s1", "s2"]);
    assert.equal(op.then, null);
    assert.deepStrictEqual(calls, ["s0", "s1", "s2"], "no step runs past the bound");
    const tuned = await dispatch(define(slow, { maxMs: 401 }));
    assert.deepStrictEqual(tuned.steps.map((s: { id: string }) => s.id), ["s0", "s1"]);
    assert.deepStrictEqual(await dispatch(define(slow, { maxMs: 400 })), { op: "step", id: "s0", data: 0 }, "400 ms reaches a 400 ms bound");
    assert.ok(now.mock.callCount() > 0, "the bound reads performance.now()");
  } finally {
    now.mock.restore();
  }
});

test("maxMs on the real clock: a step that sleeps past it ends the checkpoint", async () => {
  const calls: string[] = [];
  const handler: Handler = async ({ step }) => {
    await step.run("slow", async () => {
      calls.push("slow");
      await new Promise((resolve) => setTimeout(resolve, 40));
    });
    await step.run("next", () => calls.push("next"));
    return "done";
  };
  assert.deepStrictEqual(await dispatch(define(handler, { maxMs: 20 })), { op: "step", id: "slow", data: null });
  assert.deepStrictEqual(calls, ["slow"]);
});

test("maxBytes counts the UTF-8 length of each result's JSON, summed", async () => {
  const kib400 = "x".repeat(400 * 1024);
  const big = await dispatch(define(chain(5, [], () => kib400)));
  assert.equal(big.steps.length, 3, "3 × 400 KiB reach the default 1 MiB");
  assert.equal(big.then, null);
  // "é" is 1 UTF-16 unit but 2 UTF-8 bytes: each result's JSON `"éé…"` is 2 × 30 + 2 = 62 bytes.
  const accents = define(chain(5, [], () => "é".repeat(30)), { maxBytes: 124 });
  assert.deepStrictEqual((await dispatch(accents)).steps.length, 2, "62 + 62 bytes reach 124");
  const under = define(chain(5, [], () => "é".repeat(30)), { maxBytes: 125 });
  assert.deepStrictEqual((await dispatch(under)).steps.length, 3, "124 bytes are under 125");
  const nothing = define(chain(3, [], () => undefined), { maxBytes: 8 }); // each result is `null`: 4 bytes
  assert.deepStrictEqual((await dispatch(nothing)).steps, [
    { id: "s0", data: null },
    { id: "s1", data: null },
  ]);
});

test("the code after a step sees its JSON round trip, the same value a replay returns", async () => {
  const seen: unknown[] = [];
  const handler: Handler = async ({ step }) => {
    const value = await step.run("load", () => ({ kept: 1, dropped: undefined, when: new Date(0), nan: Number.NaN, list: [undefined, 2] }));
    seen.push(structuredClone(value));
    (value as Record<string, unknown>).kept = "changed by the handler"; // the answer carries the result, not the handler's copy
    const typed = { keys: Object.keys(value), when: typeof value.when, nan: value.nan, list: value.list };
    return step.run("use", () => typed);
  };
  const fn = define(handler);
  const first = await dispatch(fn);
  const roundTrip = { kept: 1, when: "1970-01-01T00:00:00.000Z", nan: null, list: [null, 2] };
  const used = { keys: ["kept", "when", "nan", "list"], when: "string", nan: null, list: [null, 2] };
  assert.deepStrictEqual(first, {
    op: "checkpoint",
    steps: [
      { id: "load", data: roundTrip },
      { id: "use", data: used },
    ],
    then: { op: "done", data: used },
  });
  const replayed = await dispatch(fn, { load: { type: "run", data: roundTrip }, use: { type: "run", data: used } });
  assert.deepStrictEqual(replayed, { op: "done", data: used });
  assert.deepStrictEqual(seen, [roundTrip, roundTrip], "this invoke and the replay saw the same value");
});

test("steps after a checkpointed one see attempt 1; the first sees the invoke's attempt", async () => {
  const attempts: number[] = [];
  const handler: Handler = async (ctx) => {
    for (const id of ["a", "b", "c"]) await ctx.step.run(id, () => attempts.push(ctx.attempt));
    return ctx.attempt;
  };
  const op = await dispatch(define(handler), {}, 3);
  assert.deepStrictEqual(attempts, [3, 1, 1]);
  assert.deepStrictEqual(op.then, { op: "done", data: 1 });
  attempts.length = 0;
  assert.deepStrictEqual(await dispatch(define(handler, false), {}, 3), { op: "step", id: "a", data: 1 });
  assert.deepStrictEqual(attempts, [3]);
});

test("after checkpointed steps, neither catch nor finally runs past the op that stopped it", async () => {
  const seen: string[] = [];
  const handler: Handler = async ({ step }) => {
    try {
      await step.run("a", () => 1);
      seen.push("after a");
      await step.sleep("nap", "1s");
      seen.push("after nap");
    } catch {
      seen.push("catch");
    } finally {
      seen.push("finally");
    }
  };
  assert.deepStrictEqual(await dispatch(define(handler)), {
    op: "checkpoint",
    steps: [{ id: "a", data: 1 }],
    then: { op: "sleep", id: "nap", until: "2026-01-01T00:00:01.123Z" },
  });
  assert.deepStrictEqual(seen, ["after a"]);
  seen.length = 0;
  assert.deepStrictEqual(await dispatch(define(handler, { maxSteps: 1 })), { op: "step", id: "a", data: 1 });
  assert.deepStrictEqual(seen, [], "a bound stops the handler at the step, like a new step without checkpointing");
});

test("a result without a JSON form after a checkpointed step is then's non-retryable error", async () => {
  const handler: Handler = async ({ step }) => {
    await step.run("ok", () => "fine");
    return step.run("bad", () => 10n);
  };
  const op = await dispatch(define(handler));
  assert.deepStrictEqual(op.steps, [{ id: "ok", data: "fine" }]);
  assert.equal(op.then.id, "bad");
  assert.equal(op.then.retryable, false);
  assert.match(op.then.message, /^step 'bad' returned a value that is not JSON-serialisable: /);
});

test("a branch that reaches a step while another executes ends the checkpoint instead of hanging", { timeout: 10_000 }, async () => {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const handler: Handler = async ({ step }) =>
    Promise.all([
      step.run("a", async () => {
        open(); // the other branch reaches b now, while a executes and the round is closed
        await turn();
        return "a";
      }),
      (async () => {
        await gate;
        return step.run("b", () => "b");
      })(),
    ]);
  const fn = define(handler);
  assert.deepStrictEqual(await dispatch(fn), { op: "step", id: "a", data: "a" });
  assert.deepStrictEqual(await dispatch(fn, { a: { type: "run", data: "a" } }), {
    op: "checkpoint",
    steps: [{ id: "b", data: "b" }],
    then: { op: "done", data: ["a", "b"] },
  });
});

// ---- Property: random JSON results, random bounds, whole runs --------------------------------------

/** mulberry32: a small seeded PRNG, so a failure names the seed that reproduces it. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ["a", "Zoë", "☕", "日本", "𝄞", "\u0000", "\n", '"', "\\", "\ud800", " ", "é"];

/** A random value a step may return: JSON, plus what JSON round trips into something else. */
function randomValue(random: () => number, depth = 0): unknown {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const text = () => Array.from({ length: Math.floor(random() * 6) }, () => pick(PIECES)).join("");
  const kind = depth >= 3 ? Math.floor(random() * 6) : Math.floor(random() * 9);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return random() < 0.5;
    case 2:
      return pick([0, -0, 1, -1, 42, 2 ** 53 - 1, -(2 ** 31), 0.1, 1e300, -2.5e-300, Math.floor(random() * 1e6) / 1e3]);
    case 3:
      return text();
    case 4:
      return pick([undefined, Number.NaN, Infinity, new Date(Math.floor(random() * 4e12))]); // null, null, null, an ISO string
    case 5:
      return pick([[], {}, ""]);
    case 6:
    case 7:
      return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(random, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 5) }, () => [text() || "k", randomValue(random, depth + 1)]));
  }
}

const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value === undefined ? null : value), "utf8");

for (let seed = 1; seed <= 40; seed++) {
  test(`property (seed ${seed}): every checkpoint carries each result exactly; the handler saw the round trips`, async () => {
    const random = prng(seed);
    const results = Array.from({ length: 1 + Math.floor(random() * 12) }, () => randomValue(random));
    const expected = results.map((value) => JSON.parse(JSON.stringify(value === undefined ? null : value)));
    const bounds = { maxSteps: 1 + Math.floor(random() * 5), maxBytes: 1 + Math.floor(random() * 300) };
    const executions = results.map(() => 0);
    let seen: unknown[] = [];
    const handler: Handler = async ({ step }) => {
      seen = [];
      for (const [i, value] of results.entries()) {
        const got = await step.run(`r${i}`, () => (executions[i]!++, value));
        seen.push(structuredClone(got));
        if (got !== null && typeof got === "object") (got as Record<string, unknown>).mutated = true; // must not reach the answer
      }
      return seen.length;
    };
    const { answers, output } = await drive(define(handler, bounds));
    assert.equal(output, results.length);
    assert.deepStrictEqual(executions, results.map(() => 1), "each step executed exactly once over the run");
    assert.deepStrictEqual(seen, expected, "the last replay saw every result as its JSON round trip");

    const carried = answers.flatMap((op) => (op.op === "checkpoint" ? op.steps : op.op === "step" ? [{ id: op.id, data: op.data }] : []));
    assert.deepStrictEqual(carried, expected.map((data, i) => ({ id: `r${i}`, data })), "the answers carry each result exactly, in order");
    let next = 0;
    for (const op of answers) {
      const count = op.op === "checkpoint" ? op.steps.length : op.op === "step" ? 1 : 0;
      const sizes = expected.slice(next, next + count).map(jsonBytes);
      const total = sizes.reduce((sum, n) => sum + n, 0);
      const bounded = count >= bounds.maxSteps || total >= bounds.maxBytes;
      assert.ok(count <= bounds.maxSteps, `at most maxSteps: ${JSON.stringify(op)}`);
      assert.ok(total - (sizes.at(-1) ?? 0) < bounds.maxBytes, "every step but the last was under maxBytes");
      // then is null exactly when a bound was reached (a plain step op: one step and the bound).
      const then = op.op === "checkpoint" ? op.then : op.op === "step" ? null : op;
      if (next + count < results.length) assert.equal(then === null, bounded, JSON.stringify(op));
      else assert.ok(then === null || then.op === "done");
      next += count;
    }
  });
}
