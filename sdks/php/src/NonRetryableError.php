<?php

declare(strict_types=1);

namespace Durable;

/**
 * Throw from a handler or a step to fail the run at once instead of retrying the step.
 */
class NonRetryableError extends \Exception
{
}
