<?php

/**
 * Durable example app for PHP's built-in server: `php -S 127.0.0.1:4002 index.php` (or ./run.sh).
 *
 *   onboarding      user.created     load-user → sleep 2s → send-email
 *   approval        order.placed     wait for approval.received (same orderId, 1 h) → record
 *   nightly-report  cron, every 30 s (so the demo shows it) → report
 *   sync-crm        contact.changed  ≤ 2 at once per tenant, debounced 2 s per contact → push
 *
 * Every request on any path is an invoke from the engine. The signing key comes from
 * DURABLE_SIGNING_KEY or, when sync.php provisioned the workspace itself, from its state file.
 * Included from the CLI (by sync.php) it only returns the functions.
 */

declare(strict_types=1);

require_once __DIR__ . '/../autoload.php';

use Durable\DurableFunction;
use Durable\NonRetryableError;
use Durable\Serve;
use Durable\Step;

$functions = [
    new DurableFunction(
        id: 'onboarding',
        trigger: ['event' => 'user.created'],
        handler: function (array $event, Step $step) {
            $userId = $event['data']['userId'] ?? 'u1';
            $user = $step->run('load-user', fn () => ['id' => $userId, 'email' => "$userId@example.com"]);
            $step->sleep('cooldown', '2s');
            $sent = $step->run('send-email', fn () => ['to' => $user['email'], 'template' => 'welcome']);
            return ['user' => $user['id'], 'email' => $sent];
        },
    ),
    new DurableFunction(
        id: 'approval',
        trigger: ['event' => 'order.placed'],
        handler: function (array $event, Step $step) {
            $orderId = $event['data']['orderId'] ?? throw new NonRetryableError('order.placed needs data.orderId');
            $decision = $step->waitForEvent('approve', event: 'approval.received', match: ['orderId' => $orderId], timeout: '1h');
            $by = $decision['data']['by'] ?? null;
            return $step->run('record', fn () => ['orderId' => $orderId, 'approved' => $decision !== null, 'by' => $by]);
        },
    ),
    new DurableFunction(
        id: 'nightly-report',
        trigger: ['cron' => '*/30 * * * * *'],
        handler: fn (array $event, Step $step) => $step->run('report', fn () => ['scheduledAt' => $event['data']['scheduledAt'], 'rows' => 42]),
    ),
    new DurableFunction(
        id: 'sync-crm',
        trigger: ['event' => 'contact.changed'],
        concurrency: ['limit' => 2, 'key' => 'tenantId'],
        debounce: ['period' => '2s', 'key' => 'contactId'],
        handler: function (array $event, Step $step) {
            $contactId = $event['data']['contactId'] ?? 'c1';
            return $step->run('push', fn () => ['contactId' => $contactId, 'pushed' => true]);
        },
    ),
];

if (PHP_SAPI === 'cli') {
    return $functions;
}

$stateFile = getenv('DURABLE_STATE_FILE') ?: __DIR__ . '/.durable-state.json';
$key = getenv('DURABLE_SIGNING_KEY') ?: (json_decode((string) @file_get_contents($stateFile), true)['signingKey'] ?? '');
if ($key === '') {
    http_response_code(503);
    header('content-type: application/json');
    echo '{"error":"no signing key yet: set DURABLE_SIGNING_KEY or run sync.php"}';
    return;
}
Serve::handle($functions, $key);
