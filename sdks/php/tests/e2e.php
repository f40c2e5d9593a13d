<?php

/**
 * End-to-end check against a running engine (not a PHPUnit test):
 *
 *     DURABLE_URL=http://localhost:3030 DURABLE_APP_ID=… DURABLE_SIGNING_KEY=… php tests/e2e.php
 *
 * Serves tests/fixtures/e2e_functions.php on `php -S` (4 workers), syncs them, sends events for a
 * 3-step function, a sleeping one and a waiting one (then the event that resumes it), and checks
 * that every run completes with the expected output. Then composition: a parent that invokes a child
 * (a function without trigger) and uses its output, runs two steps in parallel and sends an event that
 * starts a third function; and a function that fails for good, whose onFailure handler then runs.
 * Exits 0 on success, 1 with a message otherwise. DURABLE_ADMIN_TOKEN is sent to the read API when set.
 */

declare(strict_types=1);

require __DIR__ . '/../autoload.php';
require __DIR__ . '/Server.php';

use Durable\Client;
use Durable\Tests\Server;

function fail(string $message): never
{
    throw new RuntimeException($message);
}

/** GET a read-API path of the engine and decode it. */
function api(string $path): array
{
    $token = getenv('DURABLE_ADMIN_TOKEN');
    [$status, , $body] = Server::post(rtrim((string) getenv('DURABLE_URL'), '/') . $path, null, $token ? ['authorization' => "Bearer $token"] : []);
    if ($status !== 200) {
        fail("GET $path: $status $body");
    }
    return json_decode($body, true, 512, JSON_THROW_ON_ERROR);
}

/** Poll $probe every 200 ms until it returns non-null, at most $seconds. */
function poll(string $what, float $seconds, callable $probe): mixed
{
    $deadline = microtime(true) + $seconds;
    while (microtime(true) < $deadline) {
        if (($result = $probe()) !== null) {
            return $result;
        }
        usleep(200_000);
    }
    fail("timed out after {$seconds}s waiting for $what");
}

/** The first run of $query whose $probe holds (null when none does). */
function findRun(string $appId, string $query, callable $probe): ?array
{
    foreach (api("/api/apps/$appId/runs?$query")['items'] as $run) {
        if ($probe($run)) {
            return $run;
        }
    }
    return null;
}

/** @param list<string> $eventIds */
function runsOf(string $appId, string $query, array $eventIds): array
{
    $found = [];
    foreach (api("/api/apps/$appId/runs?$query")['items'] as $run) {
        if (in_array($run['eventId'], $eventIds, true)) {
            $found[$run['eventId']] = $run;
        }
    }
    return $found;
}

/** $value with object keys sorted recursively: the engine stores outputs as jsonb, which reorders keys. */
function sorted(mixed $value): mixed
{
    if (is_array($value)) {
        ksort($value);
        return array_map('sorted', $value);
    }
    return $value;
}

function expect(bool $ok, string $what, mixed $got): void
{
    if (!$ok) {
        fail("$what, got " . json_encode($got, JSON_UNESCAPED_SLASHES));
    }
    echo "e2e: ok: $what\n";
}

[$url, $appId, $key] = [getenv('DURABLE_URL'), getenv('DURABLE_APP_ID'), getenv('DURABLE_SIGNING_KEY')];
if (!$url || !$appId || !$key) {
    fwrite(STDERR, "e2e: set DURABLE_URL, DURABLE_APP_ID and DURABLE_SIGNING_KEY\n");
    exit(1);
}
$log = tempnam(sys_get_temp_dir(), 'durable-php-e2e');
$server = null;
try {
    [$server, $port] = Server::start(__DIR__ . '/fixtures/e2e_router.php', ['DURABLE_SIGNING_KEY' => $key, 'PHP_CLI_SERVER_WORKERS' => '4'], $log);
    $client = new Client($url, $appId, $key, "http://127.0.0.1:$port/");
    $functions = require __DIR__ . '/fixtures/e2e_functions.php';
    $client->sync($functions);
    echo 'e2e: synced ' . count($functions) . " functions (and one onFailure handler) -> http://127.0.0.1:$port/\n";

    $nonce = bin2hex(random_bytes(6));
    [$three] = $client->send('php-e2e.three', ['nonce' => $nonce]);
    [$sleep] = $client->send('php-e2e.sleep', ['nonce' => $nonce]);
    [$order] = $client->send('php-e2e.order', ['orderId' => "o-$nonce"]);
    [$parent] = $client->send('php-e2e.parent', ['orderId' => "p-$nonce"]);
    [$doomed] = $client->send('php-e2e.doomed', ['nonce' => $nonce]);
    $ids = [$three, $sleep, $order];

    poll('the wait run to park', 30, fn () => runsOf($appId, 'activity=waiting&limit=500', [$order])[$order] ?? null);
    $client->send('php-e2e.approval', ['orderId' => 'o-other', 'by' => 'mallory']);
    $client->send('php-e2e.approval', ['orderId' => "o-$nonce", 'by' => 'ana']);

    $completed = poll('all three runs to complete', 30, function () use ($appId, $ids) {
        if ($failed = runsOf($appId, 'status=failed&limit=500', $ids)) {
            fail('a run failed: ' . json_encode(array_values($failed)));
        }
        $runs = runsOf($appId, 'status=completed&limit=500', $ids);
        return count($runs) === 3 ? $runs : null;
    });
    $run = fn (string $eventId) => api('/api/runs/' . $completed[$eventId]['id']);

    $r = $run($three);
    expect(sorted($r['output']) === sorted(['sum' => 3, 'nonce' => $nonce]), '3-step output {sum: 3, nonce}', $r['output']);
    expect(array_column($r['steps'], 'id') === ['a', 'b', 'c'], 'steps a, b, c in order', array_column($r['steps'], 'id'));
    $r = $run($sleep);
    expect(($r['output']['sleptMs'] ?? 0) >= 1000 && $r['output']['nonce'] === $nonce, 'the sleep lasted at least 1s', $r['output']);
    expect(array_column($r['steps'], 'type') === ['run', 'sleep', 'run'], 'steps run, sleep, run', array_column($r['steps'], 'type'));
    $r = $run($order);
    expect(sorted($r['output']) === sorted(['approved' => true, 'by' => 'ana']), 'the wait was resumed by the matching event', $r['output']);

    // Composition: invoke, parallel, sendEvent.
    $parentRun = poll('the parent run to complete', 30, function () use ($appId, $parent) {
        if ($failed = runsOf($appId, 'status=failed&limit=500', [$parent])) {
            fail('the parent run failed: ' . json_encode(array_values($failed)));
        }
        return runsOf($appId, 'status=completed&limit=500', [$parent])[$parent] ?? null;
    });
    $r = api('/api/runs/' . $parentRun['id']);
    $receipt = ['charged' => 300, 'orderId' => "p-$nonce"];
    expect(sorted($r['output']['receipt'] ?? null) === sorted($receipt), "the parent got the child's output {charged: 300, orderId}", $r['output']);
    expect(($r['output']['total'] ?? null) === 301 && ($r['output']['label'] ?? null) === "label-p-$nonce", 'the parallel steps used it: total 301, label', $r['output']);
    $stepIds = array_column($r['steps'], 'id');
    sort($stepIds);
    expect($stepIds === ['charge', 'label', 'notify', 'total'], 'the parent has steps charge, label, total and notify', array_column($r['steps'], 'id'));
    $children = $r['children'] ?? [];
    expect(count($children) === 1 && $children[0]['functionId'] === 'php-e2e-charge' && $children[0]['stepId'] === 'charge', 'the parent lists its child run', $children);
    $child = api('/api/runs/' . $children[0]['runId']);
    expect($child['status'] === 'completed' && ($child['parentRunId'] ?? null) === $parentRun['id'], 'the child completed and names its parent', array_intersect_key($child, ['status' => 1, 'parentRunId' => 1]));
    $sent = $r['output']['sent'] ?? [];
    expect(is_array($sent) && count($sent) === 1 && is_string($sent[0]), 'sendEvent returned the id of the one event it sent', $sent);
    $shipped = poll('the run started by the sent event to complete', 30, fn () => runsOf($appId, 'status=completed&limit=500', $sent)[$sent[0]] ?? null);
    $r = api('/api/runs/' . $shipped['id']);
    expect($r['functionId'] === 'php-e2e-shipped' && sorted($r['output']) === sorted(['shipped' => "p-$nonce", 'label' => "label-p-$nonce"]), 'the sent event started php-e2e-shipped with its data', $r['output']);

    // onFailure: the handler runs once the function failed for good.
    $doomedRun = poll('the doomed run to fail', 30, fn () => runsOf($appId, 'status=failed&limit=500', [$doomed])[$doomed] ?? null);
    $handled = poll('the onFailure handler to complete', 30, fn () => findRun(
        $appId,
        'status=completed&limit=500&functionId=' . rawurlencode('php-e2e-doomed:failure'),
        fn (array $run) => (api('/api/runs/' . $run['id'])['output']['failedRun'] ?? null) === $doomedRun['id'],
    ));
    $r = api('/api/runs/' . $handled['id']);
    $report = ['failedRun' => $doomedRun['id'], 'functionId' => 'php-e2e-doomed', 'message' => "doomed $nonce", 'nonce' => $nonce];
    expect(sorted($r['output']) === sorted($report), 'the onFailure handler got {runId, functionId, error.message, event} of the failed run', $r['output']);
    echo "e2e: PASS\n";
    $code = 0;
} catch (Throwable $e) {
    fwrite(STDERR, 'e2e: FAIL: ' . $e->getMessage() . "\n");
    $code = 1;
} finally {
    if ($server !== null) {
        Server::stop($server);
    }
    if ($code !== 0 && filesize($log) > 0) {
        fwrite(STDERR, "e2e: app server log:\n" . file_get_contents($log));
    }
    @unlink($log);
}
exit($code);
