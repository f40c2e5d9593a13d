<?php

/**
 * Register the example's functions with the engine: `php sync.php` (run.sh calls it).
 *
 * DURABLE_URL (default http://localhost:3030); DURABLE_APP_URL, where the engine reaches index.php
 * (default http://127.0.0.1:$PORT/, PORT default 4002). With DURABLE_APP_ID and DURABLE_SIGNING_KEY
 * unset, it provisions the workspace DURABLE_APP_NAME (default demo-php) in DURABLE_ENV (default dev)
 * via POST /api/apps (Bearer DURABLE_ADMIN_TOKEN when set) and writes id and key to the state file
 * (DURABLE_STATE_FILE, default example/.durable-state.json) that index.php reads. Retries for 30 s
 * while the engine starts.
 */

declare(strict_types=1);

require_once __DIR__ . '/../autoload.php';

use Durable\Client;

/** @return array{string, string} app id and signing key, from the environment or provisioned */
function credentials(string $durableUrl, string $stateFile): array
{
    if (getenv('DURABLE_APP_ID') && getenv('DURABLE_SIGNING_KEY')) {
        return [getenv('DURABLE_APP_ID'), getenv('DURABLE_SIGNING_KEY')];
    }
    $body = json_encode(['name' => getenv('DURABLE_APP_NAME') ?: 'demo-php', 'environment' => getenv('DURABLE_ENV') ?: 'dev']);
    $headers = ['content-type: application/json'];
    if (getenv('DURABLE_ADMIN_TOKEN')) {
        $headers[] = 'authorization: Bearer ' . getenv('DURABLE_ADMIN_TOKEN');
    }
    $context = stream_context_create(['http' => ['method' => 'POST', 'header' => implode("\r\n", $headers), 'content' => $body, 'timeout' => 10, 'ignore_errors' => true]]);
    $answer = @file_get_contents(rtrim($durableUrl, '/') . '/api/apps', false, $context);
    $app = json_decode((string) $answer, true);
    if (!isset($app['id'], $app['signingKey'])) {
        throw new RuntimeException('POST /api/apps: ' . ($answer === false ? (error_get_last()['message'] ?? 'no answer') : $answer));
    }
    file_put_contents($stateFile, json_encode(['appId' => $app['id'], 'signingKey' => $app['signingKey']]) . "\n", LOCK_EX);
    chmod($stateFile, 0600);
    return [$app['id'], $app['signingKey']];
}

$durableUrl = getenv('DURABLE_URL') ?: 'http://localhost:3030';
$appUrl = getenv('DURABLE_APP_URL') ?: 'http://127.0.0.1:' . (getenv('PORT') ?: '4002') . '/';
$stateFile = getenv('DURABLE_STATE_FILE') ?: __DIR__ . '/.durable-state.json';
$functions = require __DIR__ . '/index.php';

for ($attempt = 1; $attempt <= 30; $attempt++) {
    try {
        [$appId, $key] = credentials($durableUrl, $stateFile);
        (new Client($durableUrl, $appId, $key, $appUrl))->sync($functions);
        $ids = implode(', ', array_map(fn ($f) => $f->id, $functions));
        echo "synced [$ids] -> $appUrl (app $appId)\n";
        exit(0);
    } catch (RuntimeException $e) {
        fwrite(STDERR, "sync attempt $attempt failed: {$e->getMessage()}\n");
        sleep(1);
    }
}
exit(1);
