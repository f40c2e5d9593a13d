// The engine's read/admin API (see /openapi.json). The dashboard uses nothing else, plus /api/stream.

export type Environment = "dev" | "acc" | "prod";
export type RunStatus = "active" | "completed" | "failed" | "cancelled";
export type RunActivity = "executing" | "queued" | "waiting" | "sleeping" | "scheduled";

export const RUN_STATUSES: RunStatus[] = ["active", "completed", "failed", "cancelled"];
export const RUN_ACTIVITIES: RunActivity[] = ["executing", "queued", "waiting", "sleeping", "scheduled"];

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface App {
  id: string;
  name: string;
  environment: Environment;
  url: string | null;
  functionCount: number;
  createdAt?: string | null;
  syncedAt?: string | null;
  /** compat: v1 or v2 signatures accepted; v2: v2 only (prod workspaces start so). */
  signatureMode?: SignatureMode;
  /** A previous signing key is still accepted (the engine signs with it until it is removed). */
  rotating?: boolean;
  /** The operator's cap on the workspace's runs executing at once; null: no cap. */
  maxConcurrency?: number | null;
  /** Runs executing now (holding a worker's lease). */
  executing?: number;
  /** Runs due now, waiting for a slot; counted up to 10,001. */
  queued?: number;
  /** Runs due later (sleeps, wait deadlines, retry backoff, throttle/debounce starts); counted up to 10,001. */
  scheduled?: number;
}

/** The answer of PATCH /api/apps/{id}: the workspace's settings as they are now. */
export interface WorkspaceSettings {
  id: string;
  signatureMode: SignatureMode;
  maxConcurrency: number | null;
}

export type SignatureMode = "compat" | "v2";

/** The answer of a key rotation: the new key, shown this once. */
export interface RotatedKey {
  id: string;
  signingKey: string;
  signatureMode: SignatureMode;
}

export interface CreatedApp {
  id: string;
  name: string;
  environment: Environment;
  signingKey: string;
}

export type PauseMode = "queue" | "skip";

/** A paused function: `queue` holds new runs (and runs not yet started) until resumed; `skip` starts nothing. */
export interface FunctionPause {
  mode: PauseMode;
  since: string;
}

export interface DurableFunction {
  id: string;
  name: string;
  /** null: the function starts only through `invoke`, as a failure handler, or from the dashboard. */
  trigger: { event?: string; cron?: string } | null;
  paused?: FunctionPause | null;
  [option: string]: unknown;
}

export interface EventRun {
  runId: string;
  functionId: string;
  status: RunStatus;
}

export interface EventOutcome {
  functionId: string;
  outcome: "skipped" | "debounced" | "batched" | string;
  reason?: string;
  runId?: string;
}

export interface DurableEvent {
  id: string;
  name: string;
  data: unknown;
  ts: number | null;
  receivedAt: string | null;
  runs: EventRun[] | null;
  outcomes: EventOutcome[] | null;
}

/** One failed attempt: of a step, or of the run when its step is unknown (the app answered nothing). */
export interface AttemptError {
  attempt: number;
  message: string;
  at: string;
}

/** The retry a scheduled run waits out. An unreachable app uses up no attempt. */
export interface RetryView {
  reason: string;
  attempt: number;
  maxAttempts: number;
  unreachable: boolean;
  since: string;
  nextAt: string;
}

export interface StepView {
  id: string;
  type: "run" | "sleep" | "wait" | "invoke" | "send" | string;
  status: string;
  attempts: number;
  output: unknown;
  /** An invoke step whose child did not complete also says why (`failed`, `timeout`, `cancelled`, `not_found`). */
  error: { message: string; reason?: string; runId?: string | null; functionId?: string } | null;
  errors?: AttemptError[];
  queuedMs: number;
  appMs: number;
  startedAt: string | null;
  endedAt: string | null;
}

/** A run started by one of this run's `invoke` steps. */
export interface RunChild {
  runId: string;
  functionId: string;
  stepId: string;
  status: RunStatus;
}

export interface CancelledBy {
  kind: "user" | "event" | "singleton" | "parent" | "bulk" | string;
  eventId?: string | null;
  eventName?: string | null;
  runId?: string | null;
}

/** What the bulk cancel and rerun act on; every field narrows it. */
export interface RunFilter {
  functionId?: string;
  status?: string;
  from?: string;
  to?: string;
  /** A subset of the runs' `event.data`. */
  match?: Record<string, unknown>;
}

export interface Run {
  id: string;
  appId: string;
  functionId: string;
  eventId: string;
  status: RunStatus;
  activity: RunActivity | null;
  output: unknown;
  error: { message: string } | null;
  flow: Record<string, Record<string, unknown>> | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  event?: { id?: string; name?: string; data?: unknown; ts?: number } | null;
  rerunOf?: string | null;
  retry?: RetryView | null;
  errors?: AttemptError[];
  steps?: StepView[];
  /** The run whose `invoke` step started this one. */
  parentRunId?: string | null;
  children?: RunChild[];
  cancelledBy?: CancelledBy | null;
}

export type MetricsRange = "1h" | "24h" | "7d";

export interface MetricsBucket {
  t: string;
  started: number;
  completed: number;
  failed: number;
  queuedMs: number;
  appMs: number;
  backlog: number;
}

export interface FunctionMetrics {
  functionId: string;
  completed: number;
  failed: number;
  p95Ms: number | null;
}

export interface Metrics {
  range: MetricsRange;
  bucketSeconds: number;
  buckets: MetricsBucket[];
  functions: FunctionMetrics[];
}

export interface Session {
  authRequired: boolean;
  signedIn: boolean;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let unauthorized: (() => void) | null = null;

/** Called when any request answers 401: the session ended (or the token changed). */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorized = handler;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  // Every write is a JSON body (`{}` when there is nothing to say): the engine refuses a signed-in
  // browser's write of any other content type, as a cross-origin form could send one.
  const write = method !== "GET" && method !== "HEAD";
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: write ? { "content-type": "application/json", accept: "application/json" } : { accept: "application/json" },
      body: write ? JSON.stringify(body ?? {}) : undefined,
    });
  } catch {
    throw new ApiError(0, "unreachable", "Can't reach the engine. Is it running?");
  }
  const text = await response.text();
  let payload: unknown = null;
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = null;
    }
  }
  if (!response.ok) {
    const object = (payload ?? {}) as { error?: unknown; code?: unknown; detail?: unknown };
    const message =
      typeof object.error === "string"
        ? object.error
        : typeof object.detail === "string"
          ? object.detail
          : `${response.status} ${response.statusText || "error"}`;
    if (response.status === 401 && path !== "/api/login") unauthorized?.();
    throw new ApiError(response.status, typeof object.code === "string" ? object.code : "error", message);
  }
  return payload as T;
}

function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

const enc = encodeURIComponent;

export const api = {
  session: () => request<Session>("GET", "/api/session"),
  login: (token: string) => request<{ ok: boolean }>("POST", "/api/login", { token }),
  logout: () => request<{ ok: boolean }>("POST", "/api/logout"),

  apps: () => request<Page<App>>("GET", "/api/apps"),
  createApp: (name: string, environment: Environment) =>
    request<CreatedApp>("POST", "/api/apps", { name, environment }),
  rotateKey: (appId: string) => request<RotatedKey>("POST", `/api/apps/${enc(appId)}/keys/rotate`),
  removePreviousKey: (appId: string) =>
    request<{ id: string; removed: boolean }>("DELETE", `/api/apps/${enc(appId)}/keys/previous`),
  setSignatureMode: (appId: string, signatureMode: SignatureMode) =>
    request<WorkspaceSettings>("PATCH", `/api/apps/${enc(appId)}`, { signatureMode }),
  setMaxConcurrency: (appId: string, maxConcurrency: number | null) =>
    request<WorkspaceSettings>("PATCH", `/api/apps/${enc(appId)}`, { maxConcurrency }),
  functions: (appId: string) => request<Page<DurableFunction>>("GET", `/api/apps/${enc(appId)}/functions`),
  pauseFunction: (appId: string, functionId: string, mode: PauseMode) =>
    request<unknown>("POST", `/api/apps/${enc(appId)}/functions/${enc(functionId)}/pause`, { mode }),
  resumeFunction: (appId: string, functionId: string) =>
    request<unknown>("POST", `/api/apps/${enc(appId)}/functions/${enc(functionId)}/resume`),
  runFunction: (appId: string, functionId: string, data: Record<string, unknown>) =>
    request<{ ids: string[] }>("POST", `/api/apps/${enc(appId)}/functions/${enc(functionId)}/run`, { data }),
  events: (appId: string, cursor: string | null, limit = 50) =>
    request<Page<DurableEvent>>("GET", `/api/apps/${enc(appId)}/events${query({ limit, cursor })}`),
  fireEvent: (appId: string, name: string, data: Record<string, unknown>) =>
    request<{ ids: string[] }>("POST", `/api/apps/${enc(appId)}/events`, { name, data }),
  runs: (
    appId: string,
    /** `match` and `output` are JSON texts (an object for match), sent as they are. */
    filters: {
      status?: string | null;
      activity?: string | null;
      functionId?: string | null;
      match?: string | null;
      output?: string | null;
    },
    cursor: string | null,
    limit = 50,
  ) => request<Page<Run>>("GET", `/api/apps/${enc(appId)}/runs${query({ ...filters, cursor, limit })}`),
  /** Cancel every active run the filter selects; `dryRun` only counts them. */
  cancelRuns: (appId: string, filter: RunFilter, dryRun: boolean) =>
    request<{ count: number }>("POST", `/api/apps/${enc(appId)}/runs/cancel`, dryRun ? { filter, dryRun } : { filter }),
  /** Rerun every run the filter selects; `dryRun` only counts them. */
  rerunRuns: (appId: string, filter: RunFilter, dryRun: boolean) =>
    request<{ count: number }>("POST", `/api/apps/${enc(appId)}/runs/rerun`, dryRun ? { filter, dryRun } : { filter }),
  run: (runId: string) => request<Run>("GET", `/api/runs/${enc(runId)}`),
  cancel: (runId: string) => request<Run>("POST", `/api/runs/${enc(runId)}/cancel`),
  rerun: (runId: string, fromStep?: string) =>
    request<{ runId: string }>("POST", `/api/runs/${enc(runId)}/rerun`, fromStep ? { fromStep } : {}),
  metrics: (appId: string, range: MetricsRange) =>
    request<Metrics>("GET", `/api/apps/${enc(appId)}/metrics${query({ range })}`),
};
