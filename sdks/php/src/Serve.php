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

    /** The types of a memoized step: one per step primitive (parallel is made of the others). */
    private const MEMO_TYPES = ['run', 'sleep', 'wait', 'invoke', 'send'];

    /** The W3C trace context of the engine's invoke span: sent beside the signature, never signed. */
    public const TRACEPARENT_HEADER = 'traceparent';

    /**
     * Answer the current request: read php://input and the signature headers, write status, headers
     * and body. Returns the response it wrote.
     *
     * @param list<DurableFunction> $functions
     * @param string|null $signingKeyFallback a second accepted key while the workspace's key is rotated
     *        (answers are signed with $signingKey)
     * @param NonceStore|null $nonceStore where accepted invoke nonces are kept (default: FileNonceStore::default())
     * @return array{status: int, headers: array<string, string>, body: string}
     */
    public static function handle(
        array $functions,
        string $signingKey,
        ?string $signingKeyFallback = null,
        ?NonceStore $nonceStore = null,
    ): array {
        $body = (string) file_get_contents('php://input', false, null, 0, self::MAX_BODY + 1);
        $headers = [
            SignatureV2::HEADER => $_SERVER['HTTP_X_DURABLE_SIGNATURE_V2'] ?? null,
            Signature::HEADER => $_SERVER['HTTP_X_DURABLE_SIGNATURE'] ?? null,
            self::TRACEPARENT_HEADER => $_SERVER['HTTP_TRACEPARENT'] ?? null,
        ];
        ob_start(); // stray output of user code (echo, warnings) must not corrupt the signed body
        try {
            $response = self::dispatch(
                $functions,
                $signingKey,
                $body,
                $headers,
                $_SERVER['REQUEST_METHOD'] ?? 'POST',
                signingKeyFallback: $signingKeyFallback,
                nonceStore: $nonceStore,
            );
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
     * Answer one request without touching globals: 200 with the op, or 401 (signature missing, v1 only,
     * malformed, wrong, stale, for another direction, or a replayed invoke: the handler is not run),
     * 400 (malformed invoke), 404 (unknown function), 405, 413, 500 (the nonce store failed), each with
     * a JSON {"error": …}. Every response is signed over its exact bytes, v2 (sender app; r = the
     * invoke's nonce once the invoke is authenticated) and v1 (for an engine in compat mode that checks
     * only v1).
     *
     * @param list<DurableFunction> $functions
     * @param array<string, string|list<string>|null>|string|null $signature the request's headers (any
     *        case, values as strings or lists: e.g. a framework's `$request->headers->all()`), or the
     *        value of its x-durable-signature-v2 header alone; a well-formed `traceparent` among the
     *        headers is kept in the invoke as 'traceparent' (else null) for the handler
     * @param (callable(): int)|null $clock epoch milliseconds, for freshness and the steps (default: the system clock)
     * @param (callable(): (int|float))|null $monotonic milliseconds on a monotonic clock, for the checkpoint's
     *        maxMs bound, counted from this call (default: hrtime)
     * @return array{status: int, headers: array<string, string>, body: string}
     */
    public static function dispatch(
        array $functions,
        string $signingKey,
        string $rawBody,
        array|string|null $signature,
        string $method = 'POST',
        ?callable $clock = null,
        ?string $signingKeyFallback = null,
        ?NonceStore $nonceStore = null,
        ?callable $monotonic = null,
    ): array {
        $monotonic = \Closure::fromCallable($monotonic ?? [self::class, 'monotonicMs']);
        $arrived = $monotonic(); // the checkpoint's maxMs counts from the invoke's arrival
        if ($signingKey === '') {
            throw new \InvalidArgumentException('the signing key must be a non-empty string');
        }
        $byId = self::index($functions);
        $clock = \Closure::fromCallable($clock ?? [Duration::class, 'nowMs']);
        $respond = fn (int $status, array $payload, string $replyTo = '') => self::respond($signingKey, $clock(), $status, $payload, $replyTo);
        if (strtoupper($method) === 'GET') {
            return $respond(200, ['functions' => array_keys($byId)]);
        }
        if (strtoupper($method) !== 'POST') {
            return $respond(405, ['error' => "method $method not allowed: the engine POSTs invokes"]);
        }
        if (strlen($rawBody) > self::MAX_BODY) {
            return $respond(413, ['error' => 'body over ' . self::MAX_BODY . ' bytes']);
        }
        [$v2, $v1] = self::signatureHeaders($signature);
        if ($v2 === null) {
            $error = $v1 === null
                ? 'missing ' . SignatureV2::HEADER
                : 'this SDK requires signatures v2: the invoke carries only ' . Signature::HEADER . ' (v1), without ' . SignatureV2::HEADER;
            return $respond(401, ['error' => $error]);
        }
        $now = $clock();
        try {
            $accepted = SignatureV2::verify($rawBody, [$signingKey, $signingKeyFallback], $v2, SignatureV2::ENGINE, null, $now);
        } catch (SignatureError $e) {
            return $respond(401, ['error' => $e->getMessage()]);
        }
        $replyTo = $accepted['n'];
        // Claimed only once the MAC holds, so no one without the key can fill the store or burn a nonce.
        try {
            $fresh = ($nonceStore ?? FileNonceStore::default())->claim($accepted['n'], $accepted['t'], $now);
        } catch (\RuntimeException $e) { // e.g. an unusable directory: the run's error tells the operator
            return $respond(500, ['error' => $e->getMessage()], $replyTo);
        }
        if (!$fresh) {
            $error = SignatureV2::HEADER . ": replay: nonce {$accepted['n']} was already accepted; the handler was not run";
            return $respond(401, ['error' => $error]);
        }
        try {
            $invoke = self::parseInvoke($rawBody);
        } catch (\UnexpectedValueException | \JsonException $e) {
            return $respond(400, ['error' => "malformed invoke: {$e->getMessage()}"], $replyTo);
        }
        $function = $byId[$invoke['functionId']] ?? null;
        if ($function === null) {
            return $respond(404, ['error' => "unknown function '{$invoke['functionId']}'"], $replyTo);
        }
        $invoke['traceparent'] = self::traceparent(is_array($signature) ? $signature : []);
        return $respond(200, self::execute($function, $invoke, $clock, fn () => $monotonic() - $arrived), $replyTo);
    }

    /**
     * Replay $function's handler for one decoded invoke and return the op to answer (a checkpoint op
     * when the function checkpoints and several new steps executed).
     *
     * @param array{event: array<string, mixed>, steps?: array<string, array<string, mixed>>, traceparent?: string|null} $invoke
     * @param (callable(): int)|null $clock
     * @param (callable(): (int|float))|null $elapsedMs milliseconds since the invoke arrived, for the
     *        checkpoint's maxMs bound (default: counted from this call with hrtime)
     * @return array<string, mixed>
     */
    public static function execute(DurableFunction $function, array $invoke, ?callable $clock = null, ?callable $elapsedMs = null): array
    {
        $clock = \Closure::fromCallable($clock ?? [Duration::class, 'nowMs']);
        $elapsedMs = $elapsedMs === null ? null : \Closure::fromCallable($elapsedMs);
        // The invoke's traceparent, for $step->traceparent() (docs/tracing.md).
        $step = new Step($invoke['steps'] ?? [], $clock, $invoke['traceparent'] ?? null, $function->checkpoint, $elapsedMs);
        try {
            return $step->finish(($function->handler)($invoke['event'], $step), null);
        } catch (\Throwable $e) {
            return $step->finish(null, $e instanceof StepInterrupt ? null : $e);
        }
    }

    /** Milliseconds on the monotonic clock (hrtime): the default for the checkpoint's maxMs bound. */
    private static function monotonicMs(): float
    {
        return hrtime(true) / 1e6;
    }

    /**
     * @param list<DurableFunction> $functions
     * @return array<string, DurableFunction> by id, onFailure handlers ('<id>:failure') included
     */
    private static function index(array $functions): array
    {
        $byId = [];
        foreach (self::expand($functions) as $function) {
            if (isset($byId[$function->id])) {
                throw new \InvalidArgumentException("duplicate function id '{$function->id}'");
            }
            $byId[$function->id] = $function;
        }
        return $byId;
    }

    /**
     * $functions with each one's onFailure handler right after it: the functions the app serves and syncs.
     *
     * @internal used by Client::sync
     * @param list<DurableFunction> $functions
     * @return list<DurableFunction>
     */
    public static function expand(array $functions): array
    {
        $all = [];
        foreach ($functions as $function) {
            if (!$function instanceof DurableFunction) {
                throw new \InvalidArgumentException('expected DurableFunction instances, got ' . get_debug_type($function));
            }
            $all[] = $function;
            if ($function->failureHandler !== null) {
                $all[] = $function->failureHandler;
            }
        }
        return $all;
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
            if (!is_array($memo) || !in_array($memo['type'] ?? null, self::MEMO_TYPES, true)) {
                throw new \UnexpectedValueException("steps.$id must be an object with type run, sleep, wait, invoke or send");
            }
        }
        return $invoke;
    }

    /**
     * The request's W3C traceparent if well-formed (lower-case hex, non-zero ids, version not ff),
     * else null: a malformed one is ignored, as the W3C recommendation says.
     *
     * @param array<string, string|list<string>|null> $headers
     */
    public static function traceparent(array $headers): ?string
    {
        foreach ($headers as $name => $value) {
            if (strtolower((string) $name) !== self::TRACEPARENT_HEADER) {
                continue;
            }
            $value = trim((string) (is_array($value) ? ($value[0] ?? '') : $value));
            $valid = '/^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$/';
            return preg_match($valid, $value) === 1 ? $value : null;
        }
        return null;
    }

    /**
     * The v2 and v1 signature headers out of a header map (or a lone header value).
     *
     * @param array<string, string|list<string>|null>|string|null $headers
     * @return array{0: string|null, 1: string|null} v2, v1 (null when absent or empty)
     */
    private static function signatureHeaders(array|string|null $headers): array
    {
        if (!is_array($headers)) { // a v2 value has t=, n=, s= parts; a v1 value is bare hex
            $value = ($headers === null || trim($headers) === '') ? null : $headers;
            return $value !== null && str_contains($value, '=') ? [$value, null] : [null, $value];
        }
        $found = [SignatureV2::HEADER => null, Signature::HEADER => null];
        foreach ($headers as $name => $value) {
            $name = strtolower((string) $name);
            $value = is_array($value) ? ($value[0] ?? null) : $value;
            if (array_key_exists($name, $found) && is_string($value) && trim($value) !== '') {
                $found[$name] = $value;
            }
        }
        return [$found[SignatureV2::HEADER], $found[Signature::HEADER]];
    }

    /**
     * The response, signed v2 as the app at $now (answering $replyTo, '' before an invoke is accepted)
     * and v1.
     *
     * @return array{status: int, headers: array<string, string>, body: string}
     */
    private static function respond(string $key, int $now, int $status, array $payload, string $replyTo): array
    {
        try {
            $body = Json::encode($payload, JSON_INVALID_UTF8_SUBSTITUTE); // e.g. a binary exception message
        } catch (\JsonException $e) {
            $body = Json::encode(['op' => 'error', 'id' => null, 'message' => "the answer is not JSON-serialisable: {$e->getMessage()}", 'retryable' => false]);
        }
        $headers = [
            'content-type' => 'application/json',
            'content-length' => (string) strlen($body),
            SignatureV2::HEADER => SignatureV2::sign($body, $key, SignatureV2::APP, $now, SignatureV2::nonce(), $replyTo),
            Signature::HEADER => Signature::sign($body, $key),
        ];
        return ['status' => $status, 'headers' => $headers, 'body' => $body];
    }
}
