/**
 * Errors of the Durable SDK.
 *
 * ```
 * Error
 *  ├── DurableError        the engine refused a DurableClient request or answered badly
 *  └── NonRetryableError   thrown by user code: fail the run now, no retries
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
