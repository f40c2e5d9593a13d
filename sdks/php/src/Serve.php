<?php

declare(strict_types=1);

namespace Durable;

/**
 * The app side of the wire protocol: verify the engine's signed invoke, replay the handler, answer one op.
 *
 * Serve::handle works in any front controller (it reads php://input and writes the response);
 * Serve::dispatch is the same without globals, for frameworks and tests.
 */
final class Serve
{
    /** The engine refuses bodies over 4 MiB; so does the app. */
    public const MAX_BODY = 4 * 1024 * 1024;

    /**
     * Answer the current request: read php://input and the x-durable-signature header, write status,
     * headers and body. Returns the response it wrote.
     *
     * @param list<DurableFunction> $functions
     * @return array{status: int, headers: array<string, string>, body: string}
     */
    public static function handle(array $functions, string $signingKey): array
    {
        $body = (string) file_get_contents('php://input', false, null, 0, self::MAX_BODY + 1);
        $signature = $_SERVER['HTTP_X_DURABLE_SIGNATURE'] ?? null;
        ob_start(); // stray output of user code (echo, warnings) must not corrupt the signed body
        try {
            $response = self::dispatch($functions, $signingKey, $body, $signature, $_SERVER['REQUEST_METHOD'] ?? 'POST');
        } finally {
            ob_end_clean();
        }
        if (!headers_sent()) {
            http_response_code($response['status']);
            foreach ($response['headers'] as $name => $value) {
                if ($name !== 'content-length') { // the SAPI sets it (and knows about output compression)
                    header("$name: $value");
                }
            }
        }
        echo $response['body'];
        return $response;
    }

    /**
     * Answer one request without touching globals: 200 with the op, or 401 (missing or wrong signature),
     * 400 (malformed invoke), 404 (unknown function), 405, 413, each with a JSON {"error": …}. Every
     * response is signed over its exact bytes.
     *
     * @param list<DurableFunction> $functions
     * @param (callable(): int)|null $clock epoch milliseconds (default: the system clock)
     * @return array{status: int, headers: array<string, string>, body: string}
     */
    public static function dispatch(
        array $functions,
        string $signingKey,
        string $rawBody,
        ?string $signature,
        string $method = 'POST',
        ?callable $clock = null,
    ): array {
        if ($signingKey === '') {
            throw new \InvalidArgumentException('the signing key must be a non-empty string');
        }
        $byId = self::index($functions);
        if (strtoupper($method) === 'GET') {
            return self::respond($signingKey, 200, ['functions' => array_keys($byId)]);
        }
        if (strtoupper($method) !== 'POST') {
            return self::respond($signingKey, 405, ['error' => "method $method not allowed: the engine POSTs invokes"]);
        }
        if (strlen($rawBody) > self::MAX_BODY) {
            return self::respond($signingKey, 413, ['error' => 'body over ' . self::MAX_BODY . ' bytes']);
        }
        if (!Signature::verify($rawBody, $signingKey, $signature)) {
            return self::respond($signingKey, 401, ['error' => ($signature ? 'wrong' : 'missing') . ' x-durable-signature']);
        }
        try {
            $invoke = self::parseInvoke($rawBody);
        } catch (\UnexpectedValueException | \JsonException $e) {
            return self::respond($signingKey, 400, ['error' => "malformed invoke: {$e->getMessage()}"]);
        }
        $function = $byId[$invoke['functionId']] ?? null;
        if ($function === null) {
            return self::respond($signingKey, 404, ['error' => "unknown function '{$invoke['functionId']}'"]);
        }
        return self::respond($signingKey, 200, self::execute($function, $invoke, $clock));
    }

    /**
     * Replay $function's handler for one decoded invoke and return the op to answer.
     *
     * @param array{event: array<string, mixed>, steps?: array<string, array<string, mixed>>} $invoke
     * @param (callable(): int)|null $clock
     * @return array<string, mixed>
     */
    public static function execute(DurableFunction $function, array $invoke, ?callable $clock = null): array
    {
        $step = new Step($invoke['steps'] ?? [], \Closure::fromCallable($clock ?? [Duration::class, 'nowMs']));
        try {
            return $step->finish(($function->handler)($invoke['event'], $step), null);
        } catch (\Throwable $e) {
            return $step->finish(null, $e instanceof StepInterrupt ? null : $e);
        }
    }

    /**
     * @param list<DurableFunction> $functions
     * @return array<string, DurableFunction> by id
     */
    private static function index(array $functions): array
    {
        $byId = [];
        foreach ($functions as $function) {
            if (!$function instanceof DurableFunction) {
                throw new \InvalidArgumentException('expected DurableFunction instances, got ' . get_debug_type($function));
            }
            if (isset($byId[$function->id])) {
                throw new \InvalidArgumentException("duplicate function id '{$function->id}'");
            }
            $byId[$function->id] = $function;
        }
        return $byId;
    }

    /** @return array<string, mixed> the invoke, checked just enough to replay it */
    private static function parseInvoke(string $raw): array
    {
        $invoke = json_decode($raw, true, 512, JSON_THROW_ON_ERROR);
        $isObject = fn ($value) => is_array($value) && ($value === [] || !array_is_list($value));
        if (!$isObject($invoke)) {
            throw new \UnexpectedValueException('the body must be a JSON object');
        }
        if (!is_string($invoke['functionId'] ?? null)) {
            throw new \UnexpectedValueException('functionId must be a string');
        }
        if (!$isObject($invoke['event'] ?? null)) {
            throw new \UnexpectedValueException('event must be an object');
        }
        $invoke['steps'] ??= [];
        if (!$isObject($invoke['steps'])) {
            throw new \UnexpectedValueException('steps must be an object');
        }
        foreach ($invoke['steps'] as $id => $memo) {
            if (!is_array($memo) || !in_array($memo['type'] ?? null, ['run', 'sleep', 'wait'], true)) {
                throw new \UnexpectedValueException("steps.$id must be an object with type run, sleep or wait");
            }
        }
        return $invoke;
    }

    /** @return array{status: int, headers: array<string, string>, body: string} */
    private static function respond(string $key, int $status, array $payload): array
    {
        try {
            $body = Json::encode($payload, JSON_INVALID_UTF8_SUBSTITUTE); // e.g. a binary exception message
        } catch (\JsonException $e) {
            $body = Json::encode(['op' => 'error', 'id' => null, 'message' => "the answer is not JSON-serialisable: {$e->getMessage()}", 'retryable' => false]);
        }
        $headers = ['content-type' => 'application/json', 'content-length' => (string) strlen($body), Signature::HEADER => Signature::sign($body, $key)];
        return ['status' => $status, 'headers' => $headers, 'body' => $body];
    }
}
