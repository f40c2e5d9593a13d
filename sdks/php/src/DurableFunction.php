<?php

declare(strict_types=1);

namespace Durable;

/**
 * A handler with its trigger, flow-control and composition options; pass it to Serve::handle and Client::sync.
 *
 * Every option is checked here: a bad one throws \InvalidArgumentException naming the function and
 * the field, e.g. "function 'x': throttle.period: invalid duration 'abc'". Periods take '500ms',
 * '3s', '1h30m', '7d', '1w' or integer milliseconds. A function without trigger starts only through
 * Step::invoke (or from the dashboard). With onFailure, the handler is served and synced as a second
 * function '<id>:failure' (see $failureHandler).
 *
 * Checkpointing is on by default: several consecutive new run steps execute in one invoke and are
 * answered together (docs/protocol.md, "Checkpointing"); `checkpoint: false` answers one step per
 * invoke. It is the SDK's own choice and is never synced.
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
    /** The suffix of a failure handler's id: '<id>:failure' must stay within the 128 characters of an id. */
    private const FAILURE_SUFFIX = ':failure';
    private const MAX_CANCEL_ON = 10;
    private const KEY = '/^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*$/D';

    /**
     * The checkpoint bounds with their defaults and ranges: 100 steps stay far below the engine's 1000
     * steps per checkpoint, 1 MiB of results well inside its 4 MiB answer, 1 s far inside the lease's
     * app-call timeout (docs/protocol.md, "Checkpointing", for why).
     */
    private const CHECKPOINT = [
        'maxSteps' => [100, 1, 1000],
        'maxBytes' => [1024 * 1024, 1, Serve::MAX_BODY],
        'maxMs' => [1000, 1, Duration::MAX_MS],
    ];

    /** The function id, unique within the app. */
    public readonly string $id;

    /** The handler: function (array $event, Step $step): mixed. */
    public readonly \Closure $handler;

    /** @var array<string, mixed> The definition as sent by Client::sync (values as written). */
    public readonly array $definition;

    /**
     * The onFailure handler as its own function: id '<id>:failure', name '<name> (failure)', no trigger.
     * The engine starts one run of it when a run of this function fails for good, with the event
     * {name: 'durable/run.failed', data: {runId, functionId, error: {message}, event}}.
     */
    public readonly ?DurableFunction $failureHandler;

    /**
     * @var array{maxSteps: int, maxBytes: int, maxMs: int}|null the checkpoint bounds, every one filled
     *      in; null when checkpointing is off. Used by Serve, never synced.
     */
    public readonly ?array $checkpoint;

    /**
     * @param string $id 1-128 characters of letters, digits and _ . : - (starting with a letter or digit);
     *        at most 120 with onFailure
     * @param array{event?: string, cron?: string}|null $trigger ['event' => 'user.created'] or
     *        ['cron' => '0 3 * * *']; null (the default): started only by Step::invoke
     * @param (callable(array, Step): mixed)|null $handler required: replayed from the top on every invoke
     *        (nullable only so that $trigger can be left out)
     * @param string|null $name display name (default: the id)
     * @param int|null $retries 0..20 retries of a failing step (default: the engine's DURABLE_MAX_ATTEMPTS)
     * @param array{limit: int, key?: string}|null $concurrency at most `limit` runs executing at once (per key)
     * @param int|array{key: string}|null $priority -1000..1000, or read from event.data at `key`
     * @param array{limit: int, period: string|int, key?: string}|null $throttle at most `limit` starts per `period`
     * @param array{limit: int, period: string|int, key?: string}|null $rateLimit excess events per `period` start no run
     * @param array{period: string|int, key?: string, timeout?: string|int}|null $debounce run `period` after a burst's last event
     * @param array{maxSize: int, timeout: string|int, key?: string}|null $batch run on `maxSize` events or `timeout` after the first
     * @param (callable(array, Step): mixed)|null $onFailure a handler run once when a run fails for good;
     *        its event's data is {runId, functionId, error: {message}, event}
     * @param list<array{event: string, match?: string, timeout?: string|int}>|null $cancelOn 1-10 events that
     *        cancel an active run: named `event`, with the same value as the run's event at data.`match`
     *        (none: any such event), within `timeout` of the run's start
     * @param string|null $idempotency a key path into event.data: at most one run per value per 24 h
     * @param array{key?: string, mode: 'skip'|'cancel'}|null $singleton at most one active run (per key):
     *        a new event is skipped, or cancels the active run
     * @param bool|array{maxSteps?: int, maxBytes?: int, maxMs?: int} $checkpoint true (the default): new run
     *        steps go on in the same invoke until another kind of op, or until `maxSteps` steps (default 100,
     *        at most 1000), `maxBytes` of JSON results (default 1048576, at most 4 MiB) or `maxMs` ms since
     *        the invoke arrived (default 1000); an array sets some bounds; false: one new step per invoke.
     *        The onFailure handler gets the same setting.
     * @throws \InvalidArgumentException naming the function and the field
     */
    public function __construct(
        string $id,
        ?array $trigger = null,
        ?callable $handler = null,
        ?string $name = null,
        ?int $retries = null,
        ?array $concurrency = null,
        int|array|null $priority = null,
        ?array $throttle = null,
        ?array $rateLimit = null,
        ?array $debounce = null,
        ?array $batch = null,
        ?callable $onFailure = null,
        ?array $cancelOn = null,
        ?string $idempotency = null,
        ?array $singleton = null,
        bool|array $checkpoint = true,
    ) {
        if (!preg_match(self::ID, $id)) {
            throw new \InvalidArgumentException("function id must be 1-128 characters of letters, digits and _ . : - starting with a letter or digit, got '$id'");
        }
        $this->id = $id;
        if ($handler === null) {
            $this->fail('handler', 'is required: function (array $event, Step $step): mixed');
        }
        $this->handler = \Closure::fromCallable($handler);
        $kind = null;
        if ($trigger !== null) {
            $kind = array_keys($trigger) === ['event'] ? 'event' : (array_keys($trigger) === ['cron'] ? 'cron' : null);
            if ($kind === null) {
                $this->fail('trigger', "must be ['event' => name], ['cron' => expr] or null (started only by invoke)");
            }
        }
        $wireTrigger = $kind === null ? null : [$kind => $this->text("trigger.$kind", $trigger[$kind])];
        $definition = ['id' => $id, 'name' => $name, 'trigger' => $wireTrigger];
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
        $definition['cancelOn'] = $cancelOn === null ? null : $this->cancelOn($cancelOn);
        $definition['idempotency'] = $idempotency === null ? null : $this->keyPath('idempotency', $idempotency);
        if ($singleton !== null) {
            $definition['singleton'] = $this->option('singleton', $singleton, ['mode'], ['key']);
            if (!in_array($singleton['mode'], ['skip', 'cancel'], true)) {
                $this->fail('singleton.mode', "must be 'skip' or 'cancel', got " . var_export($singleton['mode'], true));
            }
        }
        $this->checkpoint = $this->checkpointBounds($checkpoint);
        $this->failureHandler = $onFailure === null ? null : $this->failureFunction($onFailure, $name, $checkpoint);
        $definition['onFailure'] = $this->failureHandler?->id;
        // A function without trigger is synced with `trigger: null`; other absent options are left out.
        $this->definition = array_filter($definition, fn ($value, $field) => $value !== null || $field === 'trigger', ARRAY_FILTER_USE_BOTH);
    }

    /**
     * The onFailure handler as a function of its own: '<id>:failure', no trigger, no other options but
     * the checkpoint setting (how its steps execute, which the engine never sees).
     *
     * @param bool|array<mixed> $checkpoint
     */
    private function failureFunction(callable $onFailure, ?string $name, bool|array $checkpoint): self
    {
        $longest = 128 - strlen(self::FAILURE_SUFFIX);
        if (strlen($this->id) > $longest) {
            $this->fail('onFailure', "needs an id of at most $longest characters (the handler is synced as '<id>" . self::FAILURE_SUFFIX . "'), the id has " . strlen($this->id));
        }
        return new self(id: $this->id . self::FAILURE_SUFFIX, handler: $onFailure, name: ($name ?? $this->id) . ' (failure)', checkpoint: $checkpoint);
    }

    /**
     * @param bool|array<mixed> $checkpoint
     * @return array{maxSteps: int, maxBytes: int, maxMs: int}|null every bound, defaults filled in; null: off
     */
    private function checkpointBounds(bool|array $checkpoint): ?array
    {
        if ($checkpoint === false) {
            return null;
        }
        $given = $checkpoint === true ? [] : $checkpoint;
        foreach (array_keys($given) as $field) {
            if (!array_key_exists($field, self::CHECKPOINT)) {
                $this->fail("checkpoint.$field", 'unknown option (expected ' . implode(', ', array_keys(self::CHECKPOINT)) . ')');
            }
        }
        $bounds = [];
        foreach (self::CHECKPOINT as $field => [$default, $low, $high]) {
            $bounds[$field] = array_key_exists($field, $given) ? $this->integer("checkpoint.$field", $given[$field], $low, $high) : $default;
        }
        return $bounds;
    }

    /**
     * @param array<mixed> $entries
     * @return list<array<string, mixed>>
     */
    private function cancelOn(array $entries): array
    {
        if ($entries === [] || !array_is_list($entries)) {
            $this->fail('cancelOn', "must be a non-empty list like [['event' => 'order.cancelled', 'match' => 'orderId', 'timeout' => '7d']]");
        }
        if (count($entries) > self::MAX_CANCEL_ON) {
            $this->fail('cancelOn', 'at most ' . self::MAX_CANCEL_ON . ' entries, got ' . count($entries));
        }
        foreach ($entries as $i => $entry) {
            if (!is_array($entry)) {
                $this->fail("cancelOn[$i]", "must be ['event' => name, 'match' => key path, 'timeout' => duration], got " . get_debug_type($entry));
            }
            $this->option("cancelOn[$i]", $entry, ['event'], ['match', 'timeout']);
        }
        return $entries;
    }

    private function keyPath(string $field, mixed $value): string
    {
        if (!is_string($value) || strlen($value) > 256 || !preg_match(self::KEY, $value)) {
            $this->fail($field, "must be a dotted path into event.data such as 'tenantId' or 'user.id', got " . var_export($value, true));
        }
        return $value;
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
            } elseif ($sub === 'key' || $sub === 'match') {
                $this->keyPath($path, $item);
            } elseif ($sub === 'event') {
                $this->text($path, $item);
            } elseif ($sub === 'mode') {
                continue; // checked by the option itself
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
