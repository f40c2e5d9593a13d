<?php

declare(strict_types=1);

namespace Durable;

/**
 * Stops the handler once it reached its next new step; carries the op answered to the engine.
 *
 * It extends \Error, so `catch (\Exception $e)` in user code cannot swallow it. Code that catches
 * \Throwable or \Error must rethrow it (and even then the first op reached is the one answered).
 */
final class StepInterrupt extends \Error
{
    /** @param array<string, mixed> $op the op to answer */
    public function __construct(public readonly array $op)
    {
        parent::__construct('durable step reached: ' . ($op['id'] ?? $op['op']));
    }
}
