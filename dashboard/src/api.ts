// The engine's read/admin API. The dashboard uses nothing else, plus /api/stream.
//
// Every response type below comes from src/api.gen.ts, which openapi-typescript generates from the
// engine's own OpenAPI document (`npm run gen:api`; tests/e2e/test_dashboard_truth.py fails when the
// checked-in file differs from a fresh generation). A response shape changed in src/durable/api/schemas.py
// therefore changes these types, and `tsc` shows every place the dashboard must follow.
import type { components } from "./api.gen";

type Schemas = components["schemas"];

export type App = Schemas["Workspace"];
export type Environment = App["environment"];
export type WorkspaceSettings = Schemas["WorkspaceSettings"];
export type SignatureMode = WorkspaceSettings["signatureMode"];
export type RotatedKey = Schemas["RotatedKey"];
export type CreatedApp = Schemas["CreatedWorkspace"];
export type DurableFunction = Schemas["Function"];
export type FunctionPause = Schemas["Paused"];
export type PauseMode = FunctionPause["mode"];
export type EventRun = Schemas["EventRun"];
export type EventOutcome = Schemas["EventOutcome"];
export type DurableEvent = Schemas["Event"];
export type AttemptError = Schemas["AttemptError"];
export type RetryView = Schemas["Retry"];
export type StepView = Schemas["Step"];
export type RunChild = Schemas["Child"];
export type CancelledBy = Schemas["CancelledBy"];
/** A run as the runs list has it (output possibly as a preview). */
export type RunSummary = Schemas["RunSummary"];
/** A run with its steps, as GET /api/runs/{id} has it. */
export type Run = Schemas["Run"];
export type RunStatus = Run["status"];
export type RunActivity = NonNullable<Run["activity"]>;
export type Metrics = Schemas["Metrics"];
export type MetricsRange = Metrics["range"];
export type MetricsBucket = Schemas["MetricsBucket"];
export type FunctionMetrics = Schemas["FunctionMetrics"];
export type Session = Schemas["Session"];

export const RUN_STATUSES: RunStatus[] = ["active", "completed", "failed", "cancelled"];
export const RUN_ACTIVITIES: RunActivity[] = ["executing", "queued", "waiting", "sleeping", "scheduled"];

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** What the bulk cancel and rerun act on; every field narrows it. (A request body: not in the
 * engine's response models.) */
export interface RunFilter {
  functionId?: string;
  status?: string;
  from?: string;
  to?: string;
  /** A subset of the runs' `event.data`. */
  match?: Record<string, unknown>;
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
  login: (token: string) => request<Schemas["Ok"]>("POST", "/api/login", { token }),
  logout: () => request<Schemas["Ok"]>("POST", "/api/logout"),

  apps: () => request<Schemas["WorkspaceList"]>("GET", "/api/apps"),
  createApp: (name: string, environment: Environment) =>
    request<CreatedApp>("POST", "/api/apps", { name, environment }),
  rotateKey: (appId: string) => request<RotatedKey>("POST", `/api/apps/${enc(appId)}/keys/rotate`),
  removePreviousKey: (appId: string) =>
    request<Schemas["PreviousKeyRemoved"]>("DELETE", `/api/apps/${enc(appId)}/keys/previous`),
  setSignatureMode: (appId: string, signatureMode: SignatureMode) =>
    request<WorkspaceSettings>("PATCH", `/api/apps/${enc(appId)}`, { signatureMode }),
  setMaxConcurrency: (appId: string, maxConcurrency: number | null) =>
    request<WorkspaceSettings>("PATCH", `/api/apps/${enc(appId)}`, { maxConcurrency }),
  functions: (appId: string) => request<Schemas["FunctionList"]>("GET", `/api/apps/${enc(appId)}/functions`),
  pauseFunction: (appId: string, functionId: string, mode: PauseMode) =>
    request<Schemas["PauseAnswer"]>("POST", `/api/apps/${enc(appId)}/functions/${enc(functionId)}/pause`, { mode }),
  resumeFunction: (appId: string, functionId: string) =>
    request<Schemas["PauseAnswer"]>("POST", `/api/apps/${enc(appId)}/functions/${enc(functionId)}/resume`),
  runFunction: (appId: string, functionId: string, data: Record<string, unknown>) =>
    request<Schemas["Ids"]>("POST", `/api/apps/${enc(appId)}/functions/${enc(functionId)}/run`, { data }),
  events: (appId: string, cursor: string | null, limit = 50) =>
    request<Schemas["EventList"]>("GET", `/api/apps/${enc(appId)}/events${query({ limit, cursor })}`),
  fireEvent: (appId: string, name: string, data: Record<string, unknown>) =>
    request<Schemas["Ids"]>("POST", `/api/apps/${enc(appId)}/events`, { name, data }),
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
  ) => request<Schemas["RunList"]>("GET", `/api/apps/${enc(appId)}/runs${query({ ...filters, cursor, limit })}`),
  /** Cancel every active run the filter selects; `dryRun` only counts them. */
  cancelRuns: (appId: string, filter: RunFilter, dryRun: boolean) =>
    request<Schemas["BulkAnswer"]>("POST", `/api/apps/${enc(appId)}/runs/cancel`, dryRun ? { filter, dryRun } : { filter }),
  /** Rerun every run the filter selects; `dryRun` only counts them. */
  rerunRuns: (appId: string, filter: RunFilter, dryRun: boolean) =>
    request<Schemas["BulkAnswer"]>("POST", `/api/apps/${enc(appId)}/runs/rerun`, dryRun ? { filter, dryRun } : { filter }),
  run: (runId: string) => request<Run>("GET", `/api/runs/${enc(runId)}`),
  cancel: (runId: string) => request<Run>("POST", `/api/runs/${enc(runId)}/cancel`),
  rerun: (runId: string, fromStep?: string) =>
    request<Schemas["RerunAnswer"]>("POST", `/api/runs/${enc(runId)}/rerun`, fromStep ? { fromStep } : {}),
  metrics: (appId: string, range: MetricsRange) =>
    request<Metrics>("GET", `/api/apps/${enc(appId)}/metrics${query({ range })}`),
};
