/** Function definitions: `createFunction`, option validation and durations (pure, no I/O). */
import type { Step } from "./step.js";

type DurationUnit = "ms" | "s" | "m" | "h" | "d" | "w";

/** Integer milliseconds, or units `w d h m s ms` combined: `"500ms"`, `"90s"`, `"12h"`, `"1h30m"`. */
export type Duration = number | `${number}${DurationUnit}${string}`;

/** An event as a handler receives it. A batch run's `data` is the list of batched events. */
export interface DurableEvent<TData = any> {
  id: string;
  name: string;
  data: TData;
  /** Epoch milliseconds. */
  ts: number;
}

/**
 * One run per matching event, or a cron schedule (5 fields, or 6 with seconds first; `TZ=… ` prefix).
 * A function without a trigger (`null` or omitted) starts only through `step.invoke`, or as a failure handler.
 */
export type Trigger = { event: string } | { cron: string };

/** The `event.data` of an `onFailure` handler's run (event `durable/run.failed`). */
export interface FailureData {
  /** The run that failed for good. */
  runId: string;
  functionId: string;
  error: { message: string };
  /** The event that started the failed run. */
  event: DurableEvent<unknown>;
}

/** One entry of `cancelOn`: an event that cancels the active run. */
export interface CancelOn {
  /** The name of the cancelling event. */
  event: string;
  /** A dotted path: cancel only when the event's `data` has, there, the value of the run's own event data. */
  match?: string;
  /** Applies only this long after the run's start. */
  timeout?: Duration;
}

/**
 * Bounds of a checkpoint: consecutive new `run` steps executed in one invoke and answered together
 * (docs/protocol.md, "Checkpointing"). Each is checked after every step; the first one reached ends the
 * invoke, and the next invoke goes on from there.
 */
export interface CheckpointOptions {
  /** At most this many steps per invoke, 1 to 1000. Defaults to 100. */
  maxSteps?: number;
  /** Stop once the steps' results add up to this many bytes (UTF-8 length of each result's JSON). Defaults to 1 MiB (1048576). */
  maxBytes?: number;
  /** Stop once this many milliseconds have passed since the invoke arrived (monotonic clock). Defaults to 1000. */
  maxMs?: number;
}

/** A function's trigger and flow-control options (DESIGN.md §4, §7.1); `key` is a dotted path into `event.data`. */
export interface FunctionOptions {
  /** Unique within the app; the engine's `functionId`. At most 120 characters with `onFailure`. */
  id: string;
  /** Display name in the dashboard. */
  name?: string;
  /** What starts a run; `null` or omitted: only `step.invoke` (or the dashboard) does. */
  trigger?: Trigger | null;
  /** Retries of a failing step before the run fails (default: the engine's `DURABLE_MAX_ATTEMPTS` - 1). */
  retries?: number;
  /** At most `limit` runs executing at once (per key); excess queues. */
  concurrency?: { limit: number; key?: string };
  /** Higher starts sooner under contention; `{key}` reads it from `event.data`. */
  priority?: number | { key: string };
  /** At most `limit` run starts per `period`; excess is delayed, never dropped. */
  throttle?: { limit: number; period: Duration; key?: string };
  /** At most `limit` runs per `period`; excess events start no run. */
  rateLimit?: { limit: number; period: Duration; key?: string };
  /** Start `period` after the last event of a burst, with that event; `timeout` caps the delay. */
  debounce?: { period: Duration; key?: string; timeout?: Duration };
  /** Group events: a run gets `maxSize` of them, or what arrived within `timeout` of the first. */
  batch?: { maxSize: number; timeout: Duration; key?: string };
  /**
   * Runs once when a run of this function fails for good, with the event `durable/run.failed`
   * ({@link FailureData}). Synced as the function `<id>:failure` (no trigger, no other options).
   */
  onFailure?: Handler<FailureData>;
  /** Events that cancel an active run (at most 10). */
  cancelOn?: readonly CancelOn[];
  /** A dotted path: at most one run per value of `event.data.<path>` per 24 h; later events start none. */
  idempotency?: string;
  /** At most one active run per `key` value: a new event is skipped, or cancels the active run. */
  singleton?: { key?: string; mode: "skip" | "cancel" };
  /**
   * Execute consecutive new `run` steps in one invoke and answer them together (on by default).
   * `false`: one step per invoke, each stored before the next begins. An object tunes the bounds.
   * Never sent to the engine.
   */
  checkpoint?: boolean | CheckpointOptions;
}

/** What a handler receives. */
export interface HandlerContext<TData = any> {
  event: DurableEvent<TData>;
  step: Step;
  runId: string;
  /**
   * 1-based attempt of the step the handler is about to reach: read it where you need it, since once a
   * step of this invoke was checkpointed the steps after it are on their first attempt and it reads 1.
   */
  readonly attempt: number;
  /** The engine's W3C `traceparent` for this invoke, or null: pass it on so your spans join the run's trace. */
  traceparent: string | null;
}

/** A handler: replayed from the top on every invoke, so keep side effects inside `step.run`. */
export type Handler<TData = any, TResult = unknown> = (ctx: HandlerContext<TData>) => TResult | Promise<TResult>;

/** A function made by {@link createFunction}; pass it to `serve` and `DurableClient.sync`. */
export interface DurableFunction<TData = any, TResult = unknown> {
  readonly id: string;
  /** The definition as `sync` sends it: the options as written, without the handler. */
  readonly definition: Readonly<Record<string, unknown>>;
  readonly handler: Handler<TData, TResult>;
  /** The checkpoint bounds, every one set, or `false` when checkpointing is off. */
  readonly checkpoint: Readonly<Required<CheckpointOptions>> | false;
  /**
   * With `onFailure`: the failure handler as the function `<id>:failure` that `sync` sends next to this
   * one and `serve` dispatches to. `serve` and `sync` include it by themselves.
   */
  readonly onFailure?: DurableFunction<FailureData>;
}

const UNIT_MS: Record<DurationUnit, number> = { w: 604_800_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
const DURATION = /^(?:\d+(?:ms|[wdhms]))+$/;
const PART = /(\d+)(ms|[wdhms])/g;
const KEY = /^[^.\s]+(?:\.[^.\s]+)*$/;
/** How a field of an option object is checked; a trailing `?` makes it optional. */
type Check = "count" | "key" | "duration" | "text" | "mode";
type Shape = Record<string, Check | `${Check}?`>;
const OPTIONS: Record<string, Shape> = {
  concurrency: { limit: "count", key: "key?" },
  throttle: { limit: "count", period: "duration", key: "key?" },
  rateLimit: { limit: "count", period: "duration", key: "key?" },
  debounce: { period: "duration", key: "key?", timeout: "duration?" },
  batch: { maxSize: "count", timeout: "duration", key: "key?" },
  singleton: { key: "key?", mode: "mode" },
};
const CANCEL_ON: Shape = { event: "text", match: "key?", timeout: "duration?" };
const MAX_CANCEL_ON = 10;
/** `<id>:failure` must fit the engine's 128-character function ids. */
const MAX_ID_WITH_FAILURE = 120;
const FIELDS = ["id", "name", "trigger", "handler", "retries", "priority", ...Object.keys(OPTIONS), "onFailure", "cancelOn", "idempotency", "checkpoint"];
/** The bounds `checkpoint: true` (or omitted) means, and the most each may be (docs/protocol.md, "Checkpointing"). */
const CHECKPOINT: Readonly<Required<CheckpointOptions>> = Object.freeze({ maxSteps: 100, maxBytes: 1_048_576, maxMs: 1000 });
/** The engine takes at most 1000 steps in one checkpoint answer, and an answer of at most 4 MiB. */
const MAX_CHECKPOINT_STEPS = 1000;
const MAX_CHECKPOINT_BYTES = 4 * 1024 * 1024;

/** Render a value in a message: strings quoted like `'abc'`, the rest as JSON. */
export function repr(value: unknown): string {
  if (typeof value === "string") return `'${value.replace(/['\\]/g, "\\$&")}'`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Return `value` in milliseconds: `"500ms"`, `"1h30m"` or integer milliseconds. */
export function parseDuration(value: unknown): number {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value !== "string" || !DURATION.test(value)) throw new Error(`invalid duration ${repr(value)}`);
  let ms = 0;
  for (const [, n, unit] of value.matchAll(PART)) ms += Number(n) * UNIT_MS[unit as DurationUnit];
  return ms;
}

/**
 * Declare a durable function: its id, trigger, flow-control options and handler.
 * Every option is checked here; a bad one throws an `Error` naming the function and the field.
 */
export function createFunction<TData = any, TResult = unknown>(
  options: FunctionOptions & { handler: Handler<TData, TResult> },
): DurableFunction<TData, TResult> {
  const { id, handler } = options ?? ({} as Partial<typeof options>);
  if (typeof id !== "string" || !id.trim()) throw new Error(`function id must be a non-empty string, got ${repr(id)}`);
  const fail = (field: string, problem: string) => new Error(`function ${repr(id)}: ${field}: ${problem}`);
  const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const unknown = Object.keys(given).find((field) => !FIELDS.includes(field));
  if (unknown) throw fail(unknown, `unknown option (expected ${FIELDS.join(", ")})`);

  const text = (field: string, value: unknown): string => {
    if (typeof value !== "string" || !value.trim()) throw fail(field, `must be a non-empty string, got ${repr(value)}`);
    return value;
  };
  const integer = (field: string, value: unknown, minimum?: number): number => {
    if (!Number.isSafeInteger(value) || (minimum !== undefined && (value as number) < minimum))
      throw fail(field, `must be an integer${minimum === undefined ? "" : ` >= ${minimum}`}, got ${repr(value)}`);
    return value as number;
  };
  const key = (field: string, value: unknown): string => {
    if (typeof value !== "string" || !KEY.test(value)) throw fail(field, `must be a dotted path into event.data, got ${repr(value)}`);
    return value;
  };
  const checks: Record<Check, (field: string, value: unknown) => unknown> = {
    count: (field, value) => integer(field, value, 1),
    key,
    text,
    mode: (field, value) => {
      if (value !== "skip" && value !== "cancel") throw fail(field, `must be 'skip' or 'cancel', got ${repr(value)}`);
    },
    duration: (field, value) => {
      let ms: number;
      try {
        ms = parseDuration(value);
      } catch (error) {
        throw fail(field, (error as Error).message);
      }
      if (ms <= 0) throw fail(field, `must be a positive duration, got ${repr(value)}`);
    },
  };
  const option = (field: string, value: unknown, shape: Shape) => {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw fail(field, `must be an object, got ${repr(value)}`);
    const entries = Object.entries(value).filter(([, item]) => item !== undefined);
    for (const [sub] of entries)
      if (!Object.hasOwn(shape, sub)) throw fail(`${field}.${sub}`, `unknown option (expected ${Object.keys(shape).join(", ")})`);
    for (const [sub, check] of Object.entries(shape))
      if (!check.endsWith("?") && !entries.some(([name]) => name === sub)) throw fail(`${field}.${sub}`, "is required");
    for (const [sub, item] of entries) checks[shape[sub]!.replace("?", "") as Check](`${field}.${sub}`, item);
    return Object.fromEntries(entries);
  };

  const trigger: unknown = given.trigger ?? null;
  const kinds = typeof trigger === "object" && trigger !== null ? Object.keys(trigger) : [];
  const kind = kinds[0];
  if (trigger !== null && (kinds.length !== 1 || (kind !== "event" && kind !== "cron")))
    throw fail("trigger", `must be {event: name}, {cron: expr} or null, got ${repr(trigger)}`);
  const definition: Record<string, unknown> = {
    id,
    trigger: kind === undefined ? null : { [kind]: text(`trigger.${kind}`, (trigger as Record<string, unknown>)[kind]) },
  };
  if (given.name !== undefined) definition.name = text("name", given.name);
  if (given.retries !== undefined) definition.retries = integer("retries", given.retries, 0);
  for (const [field, shape] of Object.entries(OPTIONS))
    if (given[field] !== undefined) definition[field] = option(field, given[field], shape);
  if (given.priority !== undefined)
    definition.priority =
      typeof given.priority === "object" ? option("priority", given.priority, { key: "key" }) : integer("priority", given.priority);
  if (given.cancelOn !== undefined) {
    const list = given.cancelOn;
    if (!Array.isArray(list) || list.length > MAX_CANCEL_ON)
      throw fail("cancelOn", `must be a list of at most ${MAX_CANCEL_ON} {event, match?, timeout?}, got ${repr(list)}`);
    definition.cancelOn = list.map((entry: unknown, i) => option(`cancelOn[${i}]`, entry, CANCEL_ON));
  }
  if (given.idempotency !== undefined) definition.idempotency = key("idempotency", given.idempotency);
  if (typeof handler !== "function") throw new Error(`function ${repr(id)}: the handler must be a function`);
  const checkpoint = checkpointBounds(given.checkpoint, fail);

  let onFailure: DurableFunction<FailureData> | undefined;
  if (given.onFailure !== undefined) {
    if (typeof given.onFailure !== "function") throw fail("onFailure", `must be a handler ({ event, step }) => …, got ${repr(given.onFailure)}`);
    if (id.length > MAX_ID_WITH_FAILURE)
      throw fail("onFailure", `the id is ${id.length} characters: at most ${MAX_ID_WITH_FAILURE} leave room for its failure function '<id>:failure'`);
    const failureId = `${id}:failure`;
    const failureHandler = given.onFailure as Handler<FailureData>;
    onFailure = createFunction<FailureData>({ id: failureId, name: `${definition.name ?? id} (failure)`, trigger: null, handler: failureHandler, checkpoint });
    definition.onFailure = failureId;
  }
  const fn = { id, definition: Object.freeze(definition), handler, checkpoint };
  return Object.freeze(onFailure === undefined ? fn : { ...fn, onFailure });
}

/** The bounds of `checkpoint` as given (`true` or omitted: the defaults), or `false`; a bad value throws naming the field. */
function checkpointBounds(value: unknown, fail: (field: string, problem: string) => Error): Readonly<Required<CheckpointOptions>> | false {
  if (value === undefined || value === true) return CHECKPOINT;
  if (value === false) return false;
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw fail("checkpoint", `must be true, false or {maxSteps?, maxBytes?, maxMs?}, got ${repr(value)}`);
  const bounds = { ...CHECKPOINT };
  for (const [field, bound] of Object.entries(value)) {
    if (bound === undefined) continue;
    if (!Object.hasOwn(CHECKPOINT, field)) throw fail(`checkpoint.${field}`, `unknown option (expected ${Object.keys(CHECKPOINT).join(", ")})`);
    const cap = field === "maxSteps" ? MAX_CHECKPOINT_STEPS : field === "maxBytes" ? MAX_CHECKPOINT_BYTES : undefined;
    if (!Number.isSafeInteger(bound) || bound < 1 || (cap !== undefined && bound > cap))
      throw fail(`checkpoint.${field}`, `must be an integer ${cap !== undefined ? `from 1 to ${cap}` : ">= 1"}, got ${repr(bound)}`);
    bounds[field as keyof CheckpointOptions] = bound;
  }
  return Object.freeze(bounds);
}

/**
 * Map function ids to functions, each followed by its failure function, refusing anything not made by
 * `createFunction` and duplicate ids (the same failure function listed again is not a duplicate).
 */
export function index(functions: Iterable<DurableFunction<any, any>>): Map<string, DurableFunction<any, any>> {
  const found = new Map<string, DurableFunction<any, any>>();
  const add = (fn: DurableFunction<any, any>) => {
    if (typeof fn?.id !== "string" || typeof fn.handler !== "function" || typeof fn.definition !== "object")
      throw new Error(`expected functions made by createFunction, got ${repr(fn)}`);
    if (found.get(fn.id) === fn && fn.id.endsWith(":failure")) return;
    if (found.has(fn.id)) throw new Error(`duplicate function id ${repr(fn.id)}`);
    found.set(fn.id, fn);
  };
  for (const fn of functions) {
    add(fn);
    if (fn.onFailure !== undefined) add(fn.onFailure);
  }
  return found;
}
