<?php

declare(strict_types=1);

namespace Durable;

/**
 * A handler with its trigger and flow-control options; pass it to Serve::handle and Client::sync.
 *
 * Every option is checked here: a bad one throws \InvalidArgumentException naming the function and
 * the field, e.g. "function 'x': throttle.period: invalid duration 'abc'". Periods take '500ms',
 * '3s', '1h30m', '7d', '1w' or integer milliseconds.
 */
final class DurableFunction
{
    /** Required and optional fields of each object option; durations are checked as such. */
    private const OPTIONS = [
        'concurrency' => [['limit'], ['key']],
        'throttle' => [['limit', 'period'], ['key']],
        'rateLimit' => [['limit', 'period'], ['key']],
        'debounce' => [['period'], ['key', 'timeout']],
        'batch' => [['maxSize', 'timeout'], ['key']],
    ];
    private const ID = '/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/D';
    private const KEY = '/^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*$/D';

    /** The function id, unique within the app. */
    public readonly string $id;

    /** The handler: function (array $event, Step $step): mixed. */
    public readonly \Closure $handler;

    /** @var array<string, mixed> The definition as sent by Client::sync (values as written). */
    public readonly array $definition;

    /**
     * @param string $id 1-128 characters of letters, digits and _ . : - (starting with a letter or digit)
     * @param array{event?: string, cron?: string} $trigger ['event' => 'user.created'] or ['cron' => '0 3 * * *']
     * @param callable(array, Step): mixed $handler replayed from the top on every invoke
     * @param string|null $name display name (default: the id)
     * @param int|null $retries 0..20 retries of a failing step (default: the engine's DURABLE_MAX_ATTEMPTS)
     * @param array{limit: int, key?: string}|null $concurrency at most `limit` runs executing at once (per key)
     * @param int|array{key: string}|null $priority -1000..1000, or read from event.data at `key`
     * @param array{limit: int, period: string|int, key?: string}|null $throttle at most `limit` starts per `period`
     * @param array{limit: int, period: string|int, key?: string}|null $rateLimit excess events per `period` start no run
     * @param array{period: string|int, key?: string, timeout?: string|int}|null $debounce run `period` after a burst's last event
     * @param array{maxSize: int, timeout: string|int, key?: string}|null $batch run on `maxSize` events or `timeout` after the first
     * @throws \InvalidArgumentException naming the function and the field
     */
    public function __construct(
        string $id,
        array $trigger,
        callable $handler,
        ?string $name = null,
        ?int $retries = null,
        ?array $concurrency = null,
        int|array|null $priority = null,
        ?array $throttle = null,
        ?array $rateLimit = null,
        ?array $debounce = null,
        ?array $batch = null,
    ) {
        if (!preg_match(self::ID, $id)) {
            throw new \InvalidArgumentException("function id must be 1-128 characters of letters, digits and _ . : - starting with a letter or digit, got '$id'");
        }
        $this->id = $id;
        $this->handler = \Closure::fromCallable($handler);
        $kind = array_keys($trigger) === ['event'] ? 'event' : (array_keys($trigger) === ['cron'] ? 'cron' : null);
        if ($kind === null) {
            $this->fail('trigger', "must be ['event' => name] or ['cron' => expr]");
        }
        $definition = ['id' => $id, 'name' => $name, 'trigger' => [$kind => $this->text("trigger.$kind", $trigger[$kind])]];
        if ($name !== null) {
            $this->text('name', $name);
        }
        $definition['retries'] = $retries === null ? null : $this->integer('retries', $retries, 0, 20);
        $options = compact(array_keys(self::OPTIONS));
        foreach (self::OPTIONS as $field => [$required, $optional]) {
            $definition[$field] = $options[$field] === null ? null : $this->option($field, $options[$field], $required, $optional);
        }
        if (is_array($priority)) {
            $definition['priority'] = $this->option('priority', $priority, ['key'], []);
        } elseif ($priority !== null) {
            $definition['priority'] = $this->integer('priority', $priority, -1000, 1000);
        }
        if ($debounce !== null && isset($debounce['timeout']) && Duration::toMs($debounce['timeout']) < Duration::toMs($debounce['period'])) {
            $this->fail('debounce.timeout', 'must be at least debounce.period');
        }
        $conflicts = [
            'batch and debounce' => $batch !== null && $debounce !== null,
            'batch and rateLimit' => $batch !== null && $rateLimit !== null,
            'batch and priority.key' => $batch !== null && is_array($priority),
            'debounce and throttle' => $debounce !== null && $throttle !== null,
            'batch and trigger.cron' => $batch !== null && $kind === 'cron',
            'debounce and trigger.cron' => $debounce !== null && $kind === 'cron',
        ];
        foreach (array_keys(array_filter($conflicts)) as $pair) {
            throw new \InvalidArgumentException("function '$id': $pair cannot be combined");
        }
        $this->definition = array_filter($definition, fn ($value) => $value !== null);
    }

    private function fail(string $field, string $problem): never
    {
        throw new \InvalidArgumentException("function '{$this->id}': $field: $problem");
    }

    private function text(string $field, mixed $value): string
    {
        if (!is_string($value) || trim($value) === '' || strlen($value) > 256) {
            $this->fail($field, 'must be a non-empty string of at most 256 characters, got ' . var_export($value, true));
        }
        return $value;
    }

    private function integer(string $field, mixed $value, int $low, int $high): int
    {
        if (!is_int($value) || $value < $low || $value > $high) {
            $this->fail($field, "must be an integer $low..$high, got " . var_export($value, true));
        }
        return $value;
    }

    /**
     * @param array<mixed> $value
     * @param list<string> $required
     * @param list<string> $optional
     * @return array<string, mixed>
     */
    private function option(string $field, array $value, array $required, array $optional): array
    {
        $allowed = [...$required, ...$optional];
        foreach (array_keys($value) as $sub) {
            if (!in_array($sub, $allowed, true)) {
                $this->fail("$field.$sub", 'unknown option (expected ' . implode(', ', $allowed) . ')');
            }
        }
        foreach ($required as $sub) {
            if (!isset($value[$sub])) {
                $this->fail("$field.$sub", 'is required');
            }
        }
        foreach ($value as $sub => $item) {
            $path = "$field.$sub";
            if ($sub === 'limit' || $sub === 'maxSize') {
                $this->integer($path, $item, 1, $sub === 'limit' ? 100_000 : 1000);
            } elseif ($sub === 'key') {
                if (!is_string($item) || strlen($item) > 256 || !preg_match(self::KEY, $item)) {
                    $this->fail($path, "must be a dotted path into event.data such as 'tenantId' or 'user.id', got " . var_export($item, true));
                }
            } else {
                try {
                    $ms = Duration::toMs($item);
                } catch (\InvalidArgumentException $e) {
                    $this->fail($path, $e->getMessage());
                }
                if ($ms === 0) {
                    $this->fail($path, 'must be a positive duration, got ' . var_export($item, true));
                }
            }
        }
        return $value;
    }
}
