/**
 * Errors of the Durable SDK.
 *
 * ```
 * Error
 *  ├── DurableError        the engine refused a DurableClient request or answered badly
 *  ├── NonRetryableError   thrown by user code: fail the run now, no retries
 *  └── InvokeError         raised where a handler awaits `step.invoke` whose child did not complete
 * ```
 * The "step planned, stop the handler" signal is not an error at all: a step call that plans a new
 * step returns a promise that never settles, so no `catch` in user code can swallow it (see `step.ts`).
 */

/** The engine could not be reached, refused a request (`status` is then set), or answered badly. */
export class DurableError extends Error {
  /** The HTTP status of the engine's answer, when there was one. */
  readonly status: number | undefined;

  constructor(message: string, status?: number) {
    super(message);
    this.name = "DurableError";
    this.status = status;
  }
}

/** Throw from a handler or a step to fail the run at once instead of retrying the step. */
export class NonRetryableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NonRetryableError";
  }
}

/** Why an invoked child run did not give its output: see {@link InvokeError}. */
export type InvokeFailure = "failed" | "timeout" | "cancelled" | "not_found";

/**
 * `step.invoke` rejects with this when the child run did not complete: it `failed` (`message` is its
 * error), the `timeout` passed first, it was `cancelled`, or no function of that id exists (`not_found`,
 * `runId` is then null). An ordinary error: catch it to go on without the child's output.
 */
export class InvokeError extends Error {
  /** Why the child gave no output. */
  readonly reason: InvokeFailure;
  /** The child run, or null when none was started (`not_found`). */
  readonly runId: string | null;
  /** The invoked function's id. */
  readonly functionId: string;

  constructor(message: string, reason: InvokeFailure, runId: string | null, functionId: string) {
    super(message);
    this.name = "InvokeError";
    this.reason = reason;
    this.runId = runId;
    this.functionId = functionId;
  }
}
