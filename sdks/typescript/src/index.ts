/**
 * `@durable/sdk`: define durable functions with {@link createFunction}, answer the engine with
 * {@link serve}, register them and send events with {@link DurableClient}. No runtime dependencies.
 * @packageDocumentation
 */
export { DurableClient, type DurableClientOptions, type EventPayload, type WireEvent } from "./client.js";
export { DurableError, InvokeError, NonRetryableError, type InvokeFailure } from "./errors.js";
export {
  createFunction,
  type CancelOn,
  type CheckpointOptions,
  type Duration,
  type DurableEvent,
  type DurableFunction,
  type FailureData,
  type FunctionOptions,
  type Handler,
  type HandlerContext,
  type Trigger,
} from "./function.js";
export { serve, type DurableHandler, type NodeLikeRequest, type NodeLikeResponse, type ServeOptions } from "./serve.js";
export {
  sign,
  signV2,
  verify,
  verifyV2,
  type RefusalReason,
  type Sender,
  type SignV2Options,
  type VerifyV2Options,
  type VerifyV2Result,
} from "./signing.js";
export type { InvokeOptions, Op, Step, StepOp, WaitOptions } from "./step.js";

/** The SDK's version. */
export const version = "0.1.0";
