/**
 * Replay: run a handler against its memoized steps and turn the first new step into one op.
 *
 * A memoized step call resolves with its stored result. The first new step is planned (a `run` step
 * executes) and its call returns a promise that never settles: the handler stops there, and no
 * `try/catch` or `finally` in user code runs past it. `execute` races the handler against the planned
 * op and answers that op.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { NonRetryableError } from "./errors.js";
import { parseDuration, repr, type DurableEvent, type DurableFunction, type Duration } from "./function.js";

/** The one answer to an invoke: the next operation the handler reached (DESIGN.md §3). */
export type Op =
  | { op: "step"; id: string; data: unknown }
  | { op: "sleep"; id: string; until: string }
  | { op: "wait"; id: string; event: string; match: Record<string, unknown> | null; until: string }
  | { op: "done"; data: unknown }
  | { op: "error"; id: string | null; message: string; retryable: boolean };

/** A step the engine recorded in this run, by id. */
export interface Memo {
  type: "run" | "sleep" | "wait";
  data?: unknown;
}

/** The invoke body the engine POSTs to the app. */
export interface Invoke {
  runId: string;
  functionId: string;
  attempt: number;
  event: DurableEvent;
  steps: Record<string, Memo>;
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

/**
 * The `step` of a handler. Results travel as JSON: a step's result is what `JSON.stringify` keeps of it.
 * A repeated id is suffixed in call order (`fetch`, `fetch:1` …), counted per id across all three.
 */
export interface Step {
  /** Run `fn` once per run and resolve with its (memoized) result. A throw retries the step. */
  run<T>(id: string, fn: () => T | Promise<T>): Promise<T>;
  /** Pause the run for `duration`; no process waits meanwhile. */
  sleep(id: string, duration: Duration): Promise<void>;
  /** Park the run until a matching event arrives (resolves with it) or `timeout` passes (`null`). */
  waitForEvent<TData = any>(id: string, options: WaitOptions): Promise<DurableEvent<TData> | null>;
}

const stopped = <T>(): Promise<T> => new Promise<T>(() => {});
const runningStep = new AsyncLocalStorage<string>(); // the id of the step whose fn is executing

function errorOp(id: string | null, error: unknown): Op {
  const message = error instanceof Error ? error.message || error.name : String(error);
  return { op: "error", id, message, retryable: !(error instanceof NonRetryableError) };
}

/** The op carrying a step's (or, with a null id, the handler's) result in its JSON form. */
function resultOp(id: string | null, value: unknown): Op {
  let data: unknown;
  try {
    const json = JSON.stringify(value === undefined ? null : value);
    if (json === undefined) throw new TypeError(`a ${typeof value} has no JSON form`);
    data = JSON.parse(json);
  } catch (error) {
    const what = id === null ? "the handler" : `step '${id}'`;
    const detail = error instanceof Error ? error.message : String(error);
    return errorOp(id, new NonRetryableError(`${what} returned a value that is not JSON-serialisable: ${detail}`));
  }
  return id === null ? { op: "done", data } : { op: "step", id, data };
}

class Replay implements Step {
  /** The op of the first new step reached; set once, the first new step owns the invoke. */
  planned: Promise<Op> | undefined;
  private onReached: () => void = () => {};
  /** Settles when the handler reaches its first new step. */
  readonly reached = new Promise<void>((resolve) => (this.onReached = resolve));
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly steps: Record<string, Memo>,
    private readonly now: () => number,
  ) {}

  run<T>(id: string, fn: () => T | Promise<T>): Promise<T> {
    return this.reach(id, "run", (stepId) =>
      runningStep.run(stepId, async () => {
        try {
          return resultOp(stepId, await fn());
        } catch (error) {
          return errorOp(stepId, error);
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

  /**
   * Resolve a memoized step, or plan the first new one. Bad arguments throw (synchronously, like a
   * failed assertion, so even an un-awaited call fails the handler rather than the process).
   */
  private reach(base: string, type: Memo["type"], plan: (stepId: string) => Op | Promise<Op>): Promise<any> {
    if (typeof base !== "string" || !base) throw new NonRetryableError(`step id must be a non-empty string, got ${repr(base)}`);
    const outer = runningStep.getStore();
    if (outer !== undefined) throw new NonRetryableError(`step '${base}' was reached inside step '${outer}': steps cannot be nested`);
    const count = this.seen.get(base) ?? 0;
    this.seen.set(base, count + 1);
    const id = count ? `${base}:${count}` : base;
    const memo = Object.hasOwn(this.steps, id) ? this.steps[id] : undefined;
    if (memo?.type === type) return Promise.resolve(type === "sleep" ? undefined : (memo.data ?? null));
    if (memo) {
      const problem = `step '${id}' is recorded as type '${memo.type}', but the handler reached a '${type}' step (the handler is not deterministic)`;
      return this.stop(errorOp(id, new NonRetryableError(problem)));
    }
    // Concurrent new steps (Promise.all): only the first executes; the others stop the handler too.
    return this.planned ? stopped() : this.stop(plan(id));
  }

  private stop(op: Op | Promise<Op>): Promise<never> {
    if (!this.planned) {
      this.planned = Promise.resolve(op);
      this.onReached();
    }
    return stopped();
  }

  private until(primitive: string, stepId: string, duration: unknown): string {
    try {
      return new Date(this.now() + parseDuration(duration)).toISOString();
    } catch (error) {
      throw new NonRetryableError(`step.${primitive}('${stepId}'): ${(error as Error).message}`);
    }
  }
}

/** Replay `fn` for one invoke and return the op to answer. `now` is the clock (epoch ms) of sleeps and waits. */
export async function execute(fn: DurableFunction<any, any>, invoke: Invoke, now: () => number = Date.now): Promise<Op> {
  const step = new Replay(invoke.steps, now);
  const context = { event: invoke.event, step, runId: invoke.runId, attempt: invoke.attempt };
  const outcome = (async () => fn.handler(context))().then(
    (value) => () => resultOp(null, value),
    (error: unknown) => () => errorOp(null, error),
  );
  await Promise.race([outcome, step.reached]);
  // A reached step wins, even when user code went on without awaiting it.
  return step.planned ?? (await outcome)();
}
