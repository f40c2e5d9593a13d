<?php

declare(strict_types=1);

namespace Durable;

/**
 * Talks to the engine as one app: sync the function set and send events, every request signed.
 *
 * Requests carry x-durable-signature-v2 (sender app, a fresh nonce) and the v1 x-durable-signature (for
 * an engine that predates v2). An answer carrying v2 must be the engine's (sender engine), fresh, and
 * bound to this request (r = its nonce); an answer with v1 alone is accepted from an older engine.
 *
 * Every method throws \RuntimeException (code: the HTTP status where it applies, else 0) when the engine
 * cannot be reached, answers non-2xx (the message carries the engine's error), or answers with a
 * missing or refused signature.
 */
final class Client
{
    /** The engine's base URL, without trailing slash. */
    public readonly string $baseUrl;

    /** @var \Closure(): int */
    private readonly \Closure $clock;

    /**
     * @param string $baseUrl the engine, e.g. 'http://localhost:3030'
     * @param string $appId the workspace's app id (POST /api/apps answers it with the signing key)
     * @param string $signingKey the workspace's signing key: requests are signed with it
     * @param string|null $appUrl where the engine reaches the app served by Serve::handle (sync needs it)
     * @param float $timeout seconds per request
     * @param string|null $signingKeyFallback a second key accepted on answers while the key is rotated
     * @param (callable(): int)|null $clock epoch milliseconds (default: the system clock)
     */
    public function __construct(
        string $baseUrl,
        public readonly string $appId,
        private readonly string $signingKey,
        public readonly ?string $appUrl = null,
        public readonly float $timeout = 10.0,
        private readonly ?string $signingKeyFallback = null,
        ?callable $clock = null,
    ) {
        if ($signingKey === '') {
            throw new \InvalidArgumentException('the signing key must be a non-empty string');
        }
        $this->baseUrl = rtrim($baseUrl, '/');
        $this->clock = \Closure::fromCallable($clock ?? [Duration::class, 'nowMs']);
    }

    /**
     * Make $functions the app's whole function set in the engine (each onFailure handler synced as
     * '<id>:failure'); returns the engine's answer.
     *
     * @param list<DurableFunction> $functions
     * @return array<string, mixed>
     */
    public function sync(array $functions): array
    {
        if ($this->appUrl === null || $this->appUrl === '') {
            throw new \InvalidArgumentException('Client::sync needs $appUrl: where the engine reaches your app');
        }
        $definitions = array_map(fn (DurableFunction $f) => $f->definition, Serve::expand(array_values($functions)));
        return $this->post('/fn/sync', ['url' => $this->appUrl, 'functions' => $definitions]);
    }

    /**
     * Send one event; an $id makes the send idempotent (24 h), $ts is epoch milliseconds. An
     * $idempotencyKey (at most 256 characters) starts at most one run per key per 24 h of every
     * function it triggers that has no `idempotency` option of its own.
     *
     * @param array<string, mixed> $data the event's JSON object payload
     * @return list<string> the stored event's id
     */
    public function send(string $name, array $data = [], ?string $id = null, ?int $ts = null, ?string $idempotencyKey = null): array
    {
        return self::ids($this->post('/e', self::event(['name' => $name, 'data' => $data, 'id' => $id, 'ts' => $ts, 'idempotencyKey' => $idempotencyKey])));
    }

    /**
     * Send events ['name' => …, 'data' => […], 'id' => …, 'ts' => …, 'idempotencyKey' => …] all-or-nothing.
     *
     * @param list<array{name: string, data?: array<string, mixed>, id?: string|null, ts?: int|null, idempotencyKey?: string|null}> $events
     * @return list<string> their ids, in order
     */
    public function sendMany(array $events): array
    {
        return self::ids($this->post('/e', array_map([self::class, 'event'], array_values($events))));
    }

    /**
     * @param array<string, mixed> $event
     * @return array<string, mixed> the event as sent: `data` always a JSON object
     */
    private static function event(array $event): array
    {
        $name = $event['name'] ?? null;
        $data = $event['data'] ?? [];
        if (!is_string($name) || $name === '') {
            throw new \InvalidArgumentException('event name must be a non-empty string');
        }
        if (!is_array($data) || ($data !== [] && array_is_list($data))) {
            throw new \InvalidArgumentException("event '$name': data must be an associative array (a JSON object)");
        }
        $key = $event['idempotencyKey'] ?? null;
        if ($key !== null && (!is_string($key) || $key === '' || strlen($key) > 256)) {
            throw new \InvalidArgumentException("event '$name': idempotencyKey must be a non-empty string of at most 256 characters");
        }
        $wire = ['name' => $name, 'data' => $data === [] ? new \stdClass() : $data, 'id' => $event['id'] ?? null, 'ts' => $event['ts'] ?? null, 'idempotencyKey' => $key];
        return array_filter($wire, fn ($value) => $value !== null);
    }

    /**
     * @param array<string, mixed> $answer
     * @return list<string>
     */
    private static function ids(array $answer): array
    {
        if (!is_array($answer['ids'] ?? null)) {
            throw new \RuntimeException('POST /e: unexpected answer from the engine: ' . Json::encode($answer));
        }
        return array_map('strval', $answer['ids']);
    }

    /** @return array<string, mixed> the verified, decoded answer */
    private function post(string $path, mixed $payload): array
    {
        $body = Json::encode($payload);
        $nonce = SignatureV2::nonce();
        $context = stream_context_create(['http' => [
            'method' => 'POST',
            'header' => implode("\r\n", [
                'content-type: application/json',
                "x-durable-app: {$this->appId}",
                SignatureV2::HEADER . ': ' . SignatureV2::sign($body, $this->signingKey, SignatureV2::APP, ($this->clock)(), $nonce),
                Signature::HEADER . ': ' . Signature::sign($body, $this->signingKey),
                'user-agent: durable-sdk-php',
            ]),
            'content' => $body,
            'timeout' => $this->timeout,
            'ignore_errors' => true, // read the body of a 4xx/5xx too
            'follow_location' => 0,
        ]]);
        $answer = @file_get_contents($this->baseUrl . $path, false, $context);
        $lines = function_exists('http_get_last_response_headers') ? (http_get_last_response_headers() ?? []) : ($http_response_header ?? []);
        if ($answer === false || $lines === []) {
            $why = error_get_last()['message'] ?? 'no answer';
            throw new \RuntimeException("POST $path: cannot reach the engine at {$this->baseUrl}: $why");
        }
        preg_match('/^HTTP\/\S+\s+(\d{3})/', $lines[0], $match);
        $status = (int) ($match[1] ?? 0);
        $decoded = json_decode($answer, true);
        if ($status < 200 || $status > 299) {
            $error = $decoded['error'] ?? null;
            $error = is_array($error) ? ($error['message'] ?? Json::encode($error)) : $error;
            throw new \RuntimeException("POST $path: $status " . (is_string($error) ? $error : substr($answer, 0, 500)), $status);
        }
        $this->verifyAnswer($path, $status, $answer, self::header($lines, SignatureV2::HEADER), self::header($lines, Signature::HEADER), $nonce);
        if (!is_array($decoded)) {
            throw new \RuntimeException("POST $path: the answer is not a JSON object: " . substr($answer, 0, 500), $status);
        }
        return $decoded;
    }

    /** Accept the answer to the request signed with $nonce: v2 when it carries v2, else v1 (older engines). */
    private function verifyAnswer(string $path, int $status, string $answer, ?string $v2, ?string $v1, string $nonce): void
    {
        $keys = [$this->signingKey, $this->signingKeyFallback];
        if ($v2 !== null) {
            try {
                SignatureV2::verify($answer, $keys, $v2, SignatureV2::ENGINE, $nonce, ($this->clock)());
            } catch (SignatureError $e) {
                throw new \RuntimeException("POST $path: the answer is refused: {$e->getMessage()}", $status, $e);
            }
            return;
        }
        foreach ($keys as $key) {
            if ($key !== null && $key !== '' && Signature::verify($answer, $key, $v1)) {
                return;
            }
        }
        $what = $v1 === null ? 'missing ' . SignatureV2::HEADER . ' and ' . Signature::HEADER : 'wrong ' . Signature::HEADER;
        throw new \RuntimeException("POST $path: the answer has a $what", $status);
    }

    /**
     * The last value of header $name among the response's header lines (null when absent or empty).
     *
     * @param list<string> $lines
     */
    private static function header(array $lines, string $name): ?string
    {
        $value = null;
        foreach ($lines as $line) {
            if (stripos($line, "$name:") === 0) {
                $value = trim(substr($line, strlen($name) + 1));
            }
        }
        return $value === '' ? null : $value;
    }
}
