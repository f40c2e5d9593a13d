<?php

declare(strict_types=1);

namespace Durable;

/**
 * A child run started by Step::invoke did not complete; thrown where the handler reached the invoke.
 *
 * An ordinary \Exception: `catch (InvokeError $e)` (or `catch (\Exception $e)`) handles it. Left uncaught
 * it fails the run without retries: the child's outcome is recorded, so a replay would throw it again.
 */
class InvokeError extends \Exception
{
    /** The reasons the engine gives: the child failed, the parent's timeout passed, it was cancelled, or no such function. */
    public const REASONS = ['failed', 'timeout', 'cancelled', 'not_found'];

    /**
     * @param string $message the child's error, or why it did not run
     * @param string $reason 'failed', 'timeout', 'cancelled' or 'not_found'
     * @param string|null $runId the child run (null when no run was started: reason 'not_found')
     * @param string $functionId the function that was invoked
     */
    public function __construct(
        string $message,
        public readonly string $reason,
        public readonly ?string $runId,
        public readonly string $functionId,
    ) {
        parent::__construct($message);
    }
}
