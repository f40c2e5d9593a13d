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

/** One run per matching event, or a cron schedule (5 fields, or 6 with seconds first; `TZ=… ` prefix). */
export type Trigger = { event: string } | { cron: string };

/** A function's trigger and flow-control options (DESIGN.md §4); `key` is a dotted path into `event.data`. */
export interface FunctionOptions {
  /** Unique within the app; the engine's `functionId`. */
  id: string;
  /** Display name in the dashboard. */
  name?: string;
  trigger: Trigger;
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
}

/** What a handler receives. */
export interface HandlerContext<TData = any> {
  event: DurableEvent<TData>;
  step: Step;
  runId: string;
  /** 1-based attempt of the step the handler is about to reach. */
  attempt: number;
}

/** A handler: replayed from the top on every invoke, so keep side effects inside `step.run`. */
export type Handler<TData = any, TResult = unknown> = (ctx: HandlerContext<TData>) => TResult | Promise<TResult>;

/** A function made by {@link createFunction}; pass it to `serve` and `DurableClient.sync`. */
export interface DurableFunction<TData = any, TResult = unknown> {
  readonly id: string;
  /** The definition as `sync` sends it: the options as written, without the handler. */
  readonly definition: Readonly<Record<string, unknown>>;
  readonly handler: Handler<TData, TResult>;
}

const UNIT_MS: Record<DurationUnit, number> = { w: 604_800_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
const DURATION = /^(?:\d+(?:ms|[wdhms]))+$/;
const PART = /(\d+)(ms|[wdhms])/g;
const KEY = /^[^.\s]+(?:\.[^.\s]+)*$/;
const OPTIONS: Record<string, [required: string[], optional: string[]]> = {
  concurrency: [["limit"], ["key"]],
  throttle: [["limit", "period"], ["key"]],
  rateLimit: [["limit", "period"], ["key"]],
  debounce: [["period"], ["key", "timeout"]],
  batch: [["maxSize", "timeout"], ["key"]],
};
const FIELDS = ["id", "name", "trigger", "handler", "retries", "priority", ...Object.keys(OPTIONS)];

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
  const option = (field: string, value: unknown, [required, optional]: [string[], string[]]) => {
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw fail(field, `must be an object, got ${repr(value)}`);
    const entries = Object.entries(value).filter(([, item]) => item !== undefined);
    for (const [sub] of entries)
      if (![...required, ...optional].includes(sub))
        throw fail(`${field}.${sub}`, `unknown option (expected ${[...required, ...optional].join(", ")})`);
    for (const sub of required) if (!entries.some(([name]) => name === sub)) throw fail(`${field}.${sub}`, "is required");
    for (const [sub, item] of entries) {
      const path = `${field}.${sub}`;
      if (sub === "limit" || sub === "maxSize") integer(path, item, 1);
      else if (sub === "key") {
        if (typeof item !== "string" || !KEY.test(item)) throw fail(path, `must be a dotted path into event.data, got ${repr(item)}`);
      } else {
        let ms: number;
        try {
          ms = parseDuration(item);
        } catch (error) {
          throw fail(path, (error as Error).message);
        }
        if (ms <= 0) throw fail(path, `must be a positive duration, got ${repr(item)}`);
      }
    }
    return Object.fromEntries(entries);
  };

  const trigger: unknown = given.trigger;
  const kinds = typeof trigger === "object" && trigger !== null ? Object.keys(trigger) : [];
  const kind = kinds[0];
  if (kinds.length !== 1 || (kind !== "event" && kind !== "cron"))
    throw fail("trigger", `must be {event: name} or {cron: expr}, got ${repr(trigger)}`);
  const definition: Record<string, unknown> = { id, trigger: { [kind]: text(`trigger.${kind}`, (trigger as Record<string, unknown>)[kind]) } };
  if (given.name !== undefined) definition.name = text("name", given.name);
  if (given.retries !== undefined) definition.retries = integer("retries", given.retries, 0);
  for (const [field, spec] of Object.entries(OPTIONS))
    if (given[field] !== undefined) definition[field] = option(field, given[field], spec);
  if (given.priority !== undefined)
    definition.priority =
      typeof given.priority === "object" ? option("priority", given.priority, [["key"], []]) : integer("priority", given.priority);
  if (typeof handler !== "function") throw new Error(`function ${repr(id)}: the handler must be a function`);
  return Object.freeze({ id, definition: Object.freeze(definition), handler });
}

/** Map function ids to functions, refusing anything not made by `createFunction` and duplicate ids. */
export function index(functions: Iterable<DurableFunction<any, any>>): Map<string, DurableFunction<any, any>> {
  const found = new Map<string, DurableFunction<any, any>>();
  for (const fn of functions) {
    if (typeof fn?.id !== "string" || typeof fn.handler !== "function" || typeof fn.definition !== "object")
      throw new Error(`expected functions made by createFunction, got ${repr(fn)}`);
    if (found.has(fn.id)) throw new Error(`duplicate function id ${repr(fn.id)}`);
    found.set(fn.id, fn);
  }
  return found;
}
