/**
 * Replay: run a handler against its memoized steps and turn the new steps it reaches into the answer.
 *
 * A memoized step call resolves with its stored result. A new step call is recorded and returns a
 * promise that never settles: that branch of the handler stops there, and no `try/catch` or `finally`
 * in user code runs past it. Other branches (`Promise.all`) go on until each has finished from memo or
 * reached a new step; `execute` lets the handler settle so, then executes every new `run` step together
 * and answers one op, or a `parallel` op carrying all of them in the order they were reached.
 *
 * With checkpointing on, a `run` step reached alone that succeeds is the exception: its promise resolves
 * with the result's JSON round trip (what a replay would return) and the handler goes on, round after
 * round, until it reaches anything else or a bound; the answer is then a `checkpoint` op carrying every
 * such step and the op that stopped it (docs/protocol.md, "Checkpointing").
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { performance } from "node:perf_hooks";
import { wireEvent, type EventPayload, type WireEvent } from "./client.js";
import { InvokeError, NonRetryableError, type InvokeFailure } from "./errors.js";
import { parseDuration, repr, type DurableEvent, type DurableFunction, type Duration } from "./function.js";

/** An op that may stand in a `parallel` answer: anything but a timer or a wait, and always with a step id. */
export type StepOp =
  | { op: "step"; id: string; data: unknown }
  | { op: "invoke"; id: string; function: string; data: Record<string, unknown>; until: string | null }
  | { op: "send"; id: string; events: WireEvent[] }
  | { op: "error"; id: string; message: string; retryable: boolean };

/** The one answer to an invoke: what the handler reached (docs/protocol.md, "The answer" and "Composition"). */
export type Op =
  | StepOp
  | { op: "sleep"; id: string; until: string }
  | { op: "wait"; id: string; event: string; match: Record<string, unknown> | null; until: string }
  | { op: "parallel"; ops: StepOp[] }
  | { op: "done"; data: unknown }
  | { op: "error"; id: string | null; message: string; retryable: boolean }
  | {
      op: "checkpoint";
      /** The new `run` steps executed in this invoke, in order, with their JSON results. */
      steps: { id: string; data: unknown }[];
      /** The op that stopped the checkpoint (never a `step`), or null when a bound did. */
      then: Exclude<Op, { op: "step" | "checkpoint" }> | null;
    };

/** The primitives, as the engine names the steps they record. */
type StepType = "run" | "sleep" | "wait" | "invoke" | "send";

/** A step the engine recorded in this run, by id. */
export interface Memo {
  type: StepType;
  data?: unknown;
  /** An `invoke` whose child did not complete. */
  error?: { message?: string; reason?: InvokeFailure; runId?: string | null; functionId?: string };
}

/** The invoke body the engine POSTs to the app. */
export interface Invoke {
  runId: string;
  functionId: string;
  attempt: number;
  event: DurableEvent;
  steps: Record<string, Memo>;
  /** The invoke's W3C `traceparent` header, when the engine traces (docs/tracing.md). */
  traceparent?: string | null;
}

/** Options of {@link Step.waitForEvent}. */
export interface WaitOptions {
  /** The name of the event to wait for. */
  event: string;
  /** A subset of the awaited event's `data` (nested objects compare recursively); omit to take any. */
  match?: Record<string, unknown> | null;
  /** How long to wait before resolving with `null`. */
  timeout: Duration;
}

/** Options of {@link Step.invoke}. */
export interface InvokeOptions<TData = Record<string, unknown>, TResult = unknown> {
  /** The function to start: one made by `createFunction`, or the id of a function of the same workspace. */
  function: DurableFunction<TData, TResult> | string;
  /** The child's `event.data` (default `{}`). */
  data?: TData;
  /** Give up waiting after this long (`InvokeError` with reason `timeout`); omit to wait as long as the child runs. */
  timeout?: Duration;
}

/**
 * The `step` of a handler. Results travel as JSON: a step's result is what `JSON.stringify` keeps of it.
 * A repeated id is suffixed in call order (`fetch`, `fetch:1` …), counted per id across all primitives.
 * Step calls started together (`Promise.all`) are reported together: new `run` steps execute
 * concurrently in one invoke, invokes and sends start at once; a sleep or a wait must stand alone.
 */
export interface Step {
  /** Run `fn` once per run and resolve with its (memoized) result. A throw retries the step. */
  run<T>(id: string, fn: () => T | Promise<T>): Promise<T>;
  /** Pause the run for `duration`; no process waits meanwhile. */
  sleep(id: string, duration: Duration): Promise<void>;
  /** Park the run until a matching event arrives (resolves with it) or `timeout` passes (`null`). */
  waitForEvent<TData = any>(id: string, options: WaitOptions): Promise<DurableEvent<TData> | null>;
  /**
   * Start one run of another function and resolve with its output; no process waits meanwhile.
   * Rejects with an {@link InvokeError} when the child fails, times out, is cancelled or does not exist.
   */
  invoke<TResult = unknown, TData = Record<string, unknown>>(id: string, options: InvokeOptions<TData, TResult>): Promise<TResult>;
  /** Send one event, or a list (at most 100), once per run; resolves with their ids in order. */
  sendEvent(id: string, events: EventPayload | readonly EventPayload[]): Promise<string[]>;
}

/** What executing a `run` step made: its op, and for a result (`step` op) that result's JSON text. */
interface Executed {
  op: StepOp;
  json?: string;
}

/** A reached new step: its op, computed when reached, or for a `run` step the execution that makes it. */
interface Reached {
  id: string;
  type: StepType | "mismatch";
  op: Op | (() => Promise<Executed>);
  /** Settles the step call's promise, for a `run` step whose result continues the handler. */
  resume?: (value: unknown) => void;
}

const MAX_SENT = 100;
const stopped = <T>(): Promise<T> => new Promise<T>(() => {});
const runningStep = new AsyncLocalStorage<string>(); // the id of the step whose fn is executing
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function errorOp(id: string, error: unknown): StepOp & { op: "error" };
function errorOp(id: string | null, error: unknown): Op & { op: "error" };
function errorOp(id: string | null, error: unknown): Op & { op: "error" } {
  const message = error instanceof Error ? error.message || error.name : String(error);
  // An InvokeError the handler let through would be raised again by every retry: the memo is final.
  return { op: "error", id, message, retryable: !(error instanceof NonRetryableError || error instanceof InvokeError) };
}

/** The op carrying a step's (or, with a null id, the handler's) result in its JSON form, and that JSON text. */
function resultOp(id: string, value: unknown): Executed;
function resultOp(id: null, value: unknown): Op;
function resultOp(id: string | null, value: unknown): Op | Executed {
  let json: string | undefined;
  try {
    json = JSON.stringify(value === undefined ? null : value);
    if (json === undefined) throw new TypeError(`a ${typeof value} has no JSON form`);
  } catch (error) {
    const what = id === null ? "the handler" : `step '${id}'`;
    const detail = error instanceof Error ? error.message : String(error);
    const failed = errorOp(id, new NonRetryableError(`${what} returned a value that is not JSON-serialisable: ${detail}`));
    return id === null ? failed : { op: failed as StepOp };
  }
  const data: unknown = JSON.parse(json);
  return id === null ? { op: "done", data } : { op: { op: "step", id, data }, json };
}

/** A promise rejected with `error` that counts as handled, so an un-awaited one cannot crash the process. */
function rejected(error: Error): Promise<never> {
  const promise = Promise.reject(error);
  promise.catch(() => {});
  return promise;
}

class Replay implements Step {
  /** The new steps reached in this round, in call order. */
  reached: Reached[] = [];
  /** Once set, the answer is being made: a step reached later stops its branch without being reported. */
  closed = false;
  /** A step was reached while closed: its branch is stopped for good, so the handler cannot go on. */
  dropped = false;
  private onReach: () => void = () => {};
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly steps: Record<string, Memo>,
    private readonly now: () => number,
  ) {}

  run<T>(id: string, fn: () => T | Promise<T>): Promise<T> {
    return this.reach(id, "run", (stepId) => () =>
      runningStep.run(stepId, async () => {
        try {
          return resultOp(stepId, await fn());
        } catch (error) {
          return { op: errorOp(stepId, error) };
        }
      }),
    );
  }

  sleep(id: string, duration: Duration): Promise<void> {
    return this.reach(id, "sleep", (stepId) => ({ op: "sleep", id: stepId, until: this.until("sleep", stepId, duration) }));
  }

  waitForEvent<TData = any>(id: string, options: WaitOptions): Promise<DurableEvent<TData> | null> {
    return this.reach(id, "wait", (stepId) => {
      const { event, match = null, timeout } = options ?? ({} as Partial<WaitOptions>);
      if (typeof event !== "string" || !event)
        throw new NonRetryableError(`step.waitForEvent('${stepId}'): event must be a non-empty string`);
      if (match !== null && (typeof match !== "object" || Array.isArray(match)))
        throw new NonRetryableError(`step.waitForEvent('${stepId}'): match must be an object or null`);
      return { op: "wait", id: stepId, event, match, until: this.until("waitForEvent", stepId, timeout) };
    });
  }

  invoke<TResult = unknown, TData = Record<string, unknown>>(id: string, options: InvokeOptions<TData, TResult>): Promise<TResult> {
    return this.reach(id, "invoke", (stepId) => {
      const { function: target, data = {}, timeout } = options ?? ({} as Partial<InvokeOptions<TData, TResult>>);
      const fail = (problem: string) => new NonRetryableError(`step.invoke('${stepId}'): ${problem}`);
      const functionId = typeof target === "string" ? target : target?.id;
      if (typeof functionId !== "string" || !functionId)
        throw fail(`function must be a function made by createFunction or a function id, got ${repr(target)}`);
      if (typeof data !== "object" || data === null || Array.isArray(data)) throw fail(`data must be an object, got ${repr(data)}`);
      const until = timeout === undefined ? null : this.until("invoke", stepId, timeout);
      return { op: "invoke", id: stepId, function: functionId, data: data as Record<string, unknown>, until };
    });
  }

  sendEvent(id: string, events: EventPayload | readonly EventPayload[]): Promise<string[]> {
    return this.reach(id, "send", (stepId) => {
      const fail = (problem: string) => new NonRetryableError(`step.sendEvent('${stepId}'): ${problem}`);
      const list: readonly EventPayload[] = Array.isArray(events) ? events : [events as EventPayload];
      if (list.length === 0 || list.length > MAX_SENT) throw fail(`send one event or a list of 1 to ${MAX_SENT}, got ${list.length}`);
      return { op: "send", id: stepId, events: list.map((event) => wireEvent(event, fail)) };
    });
  }

  /**
   * Resolve a memoized step, or record a new one. Bad arguments throw (synchronously, like a failed
   * assertion, so even an un-awaited call fails the handler rather than the process).
   */
  private reach(base: string, type: StepType, plan: (stepId: string) => Reached["op"]): Promise<any> {
    if (typeof base !== "string" || !base) throw new NonRetryableError(`step id must be a non-empty string, got ${repr(base)}`);
    const outer = runningStep.getStore();
    if (outer !== undefined) throw new NonRetryableError(`step '${base}' was reached inside step '${outer}': steps cannot be nested`);
    const count = this.seen.get(base) ?? 0;
    this.seen.set(base, count + 1);
    const id = count ? `${base}:${count}` : base;
    const memo = Object.hasOwn(this.steps, id) ? this.steps[id] : undefined;
    if (memo?.type === type) return this.resolve(type, memo);
    if (this.closed) {
      this.dropped = true;
      return stopped();
    }
    if (memo) {
      const problem = `step '${id}' is recorded as type '${memo.type}', but the handler reached a '${type}' step (the handler is not deterministic)`;
      return this.record({ id, type: "mismatch", op: errorOp(id, new NonRetryableError(problem)) });
    }
    const step: Reached = { id, type, op: plan(id) };
    if (type !== "run") return this.record(step);
    return new Promise((resume) => this.record(Object.assign(step, { resume })));
  }

  private resolve(type: StepType, memo: Memo): Promise<unknown> {
    if (type === "sleep") return Promise.resolve(undefined);
    const error = memo.error;
    if (type === "invoke" && typeof error === "object" && error !== null) {
      const reason = error.reason ?? "failed";
      const message = error.message ?? `the invoked run did not complete (${reason})`;
      return rejected(new InvokeError(message, reason, error.runId ?? null, error.functionId ?? ""));
    }
    return Promise.resolve(memo.data ?? null);
  }

  private record(step: Reached): Promise<never> {
    this.reached.push(step);
    this.onReach();
    return stopped();
  }

  /** Settles once a new step has been reached in this round (at once if one already was). */
  reaching(): Promise<void> {
    return this.reached.length ? Promise.resolve() : new Promise<void>((resolve) => (this.onReach = resolve));
  }

  /** The step reached alone in this round when it is a new `run` step: one a checkpoint may execute and go on from. */
  lone(): (Reached & { op: () => Promise<Executed> }) | undefined {
    const [only, ...others] = this.reached;
    return only && others.length === 0 && typeof only.op === "function" ? (only as Reached & { op: () => Promise<Executed> }) : undefined;
  }

  /** Continue the handler past `step` with `value` (its result as a replay returns it), in a new round. */
  resume(step: Reached, value: unknown): void {
    this.reached = [];
    this.closed = false;
    step.resume?.(value);
  }

  private until(primitive: string, stepId: string, duration: unknown): string {
    try {
      return new Date(this.now() + parseDuration(duration)).toISOString();
    } catch (error) {
      throw new NonRetryableError(`step.${primitive}('${stepId}'): ${(error as Error).message}`);
    }
  }

  /**
   * Wait until the handler can make no more progress without the engine: a turn of the event loop in
   * which no branch reached a new step (memoized results resolve in microtasks, which all run first).
   */
  async settle(): Promise<void> {
    for (let count = -1; count !== this.reached.length; ) {
      count = this.reached.length;
      await turn();
    }
    this.closed = true;
  }

  /** The answer for the steps reached: one op, or a `parallel` op with the new `run` steps executed together. */
  async answer(): Promise<Op> {
    const mismatch = this.reached.find((step) => step.type === "mismatch");
    if (mismatch) return mismatch.op as Op;
    const [only, ...others] = this.reached;
    if (only && others.length === 0) return typeof only.op === "function" ? (await only.op()).op : only.op;
    const parked = this.reached.find((step) => step.type === "sleep" || step.type === "wait");
    if (parked) {
      const what = parked.type === "sleep" ? "a sleep" : "a wait";
      const together = this.reached.filter((step) => step !== parked).map((step) => `'${step.id}'`).join(", ");
      const problem = `step '${parked.id}': ${what} cannot run in parallel with other steps (it was reached together with ${together}; await it before or after them)`;
      return errorOp(parked.id, new NonRetryableError(problem));
    }
    const ops = await Promise.all(this.reached.map(async (step) => (typeof step.op === "function" ? (await step.op()).op : (step.op as StepOp))));
    return { op: "parallel", ops };
  }
}

/** The op that stops a checkpoint. */
type Then = Exclude<Op, { op: "step" | "checkpoint" }>;

/**
 * Replay `fn` for one invoke and return the op to answer. `started` is when the invoke arrived on the
 * monotonic clock (`performance.now()`, looked up at each call), which `maxMs` counts from; `now` is the
 * clock (epoch ms) of sleeps, waits and invokes.
 */
export async function execute(
  fn: DurableFunction<any, any>,
  invoke: Invoke,
  started: number = performance.now(),
  now: () => number = Date.now,
): Promise<Op> {
  const bounds = fn.checkpoint ?? false;
  const checkpointed: { id: string; data: unknown }[] = [];
  const step = new Replay(invoke.steps, now);
  const context = {
    event: invoke.event,
    step,
    runId: invoke.runId,
    // The invoke's attempt is that of its first new step; any step after a checkpointed one is new.
    get attempt() {
      return checkpointed.length ? 1 : invoke.attempt;
    },
    traceparent: invoke.traceparent ?? null,
  };
  const outcome = (async () => fn.handler(context))().then(
    (value) => () => resultOp(null, value),
    (error: unknown) => () => errorOp(null, error),
  );
  let bytes = 0;
  let then: Op | null;
  for (;;) {
    await Promise.race([outcome, step.reaching()]);
    // A reached step wins, even when user code went on without awaiting it (or returned before it).
    if (step.reached.length === 0) await turn();
    if (step.reached.length === 0) {
      then = (await outcome)();
      break;
    }
    await step.settle();
    const lone = bounds === false ? undefined : step.lone();
    if (bounds === false || lone === undefined) {
      then = await step.answer();
      break;
    }
    const { op, json } = await lone.op();
    if (op.op !== "step" || json === undefined) {
      then = op;
      break;
    }
    checkpointed.push({ id: op.id, data: op.data });
    bytes += Buffer.byteLength(json, "utf8");
    if (step.dropped || checkpointed.length >= bounds.maxSteps || bytes >= bounds.maxBytes || performance.now() - started >= bounds.maxMs) {
      then = null;
      break;
    }
    step.resume(lone, JSON.parse(json)); // a copy of its own: the handler may change it, the answer must not
  }
  const [first] = checkpointed;
  if (first === undefined) return then as Op; // with no step executed, the loop always ends on an op
  if (then === null && checkpointed.length === 1) return { op: "step", ...first };
  // Never a step: a lone new run step goes on in the loop above, and answer() gives a step op only for one.
  return { op: "checkpoint", steps: checkpointed, then: then as Then | null };
}
