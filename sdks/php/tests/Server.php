<?php

declare(strict_types=1);

namespace Durable\Tests;

/** A `php -S` child process for tests and the e2e script, plus a tiny HTTP client over streams. */
final class Server
{
    /**
     * Start `php -S 127.0.0.1:<free port> $router` with $env added to this process's environment;
     * returns once it accepts connections.
     *
     * @param array<string, string> $env
     * @return array{0: resource, 1: int} the process and its port
     */
    public static function start(string $router, array $env = [], ?string $log = null): array
    {
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr((string) strrchr(stream_socket_get_name($probe, false), ':'), 1);
        fclose($probe);
        $output = ['file', $log ?? '/dev/null', 'a'];
        $process = proc_open(
            [PHP_BINARY, '-S', "127.0.0.1:$port", $router],
            [0 => ['file', '/dev/null', 'r'], 1 => $output, 2 => $output],
            $pipes,
            dirname($router),
            $env + getenv(),
        );
        if (!is_resource($process)) {
            throw new \RuntimeException("cannot start php -S for $router");
        }
        for ($i = 0; $i < 100; $i++) {
            $socket = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $error, 0.1);
            if ($socket) {
                fclose($socket);
                return [$process, $port];
            }
            if (!proc_get_status($process)['running']) {
                break;
            }
            usleep(50_000);
        }
        self::stop($process);
        throw new \RuntimeException("php -S for $router did not start listening on port $port");
    }

    /**
     * Stop the server and its workers (PHP_CLI_SERVER_WORKERS forks children that outlive their parent).
     *
     * @param resource $process
     */
    public static function stop($process): void
    {
        $pid = proc_get_status($process)['pid'];
        $children = [];
        foreach (glob('/proc/[0-9]*/stat') ?: [] as $stat) {
            $fields = explode(' ', (string) preg_replace('/^.*\) /', '', (string) @file_get_contents($stat)));
            if (($fields[1] ?? null) === (string) $pid) {
                $children[] = (int) basename(dirname($stat));
            }
        }
        proc_terminate($process);
        foreach ($children as $child) {
            function_exists('posix_kill') ? posix_kill($child, 15) : exec("kill $child");
        }
        proc_close($process);
    }

    /**
     * Send $copies identical POSTs at once (all written before any answer is read) and return their
     * statuses, in the order sent.
     *
     * @param array<string, string> $headers
     * @return list<int>
     */
    public static function postConcurrently(string $url, string $body, array $headers, int $copies): array
    {
        $parts = parse_url($url);
        $request = "POST {$parts['path']} HTTP/1.1\r\nHost: {$parts['host']}:{$parts['port']}\r\nConnection: close\r\n"
            . 'content-type: application/json' . "\r\ncontent-length: " . strlen($body) . "\r\n";
        foreach ($headers as $name => $value) {
            $request .= "$name: $value\r\n";
        }
        $request .= "\r\n$body";
        $sockets = [];
        for ($i = 0; $i < $copies; $i++) {
            $socket = stream_socket_client("tcp://{$parts['host']}:{$parts['port']}", $errno, $error, 5);
            if ($socket === false) {
                throw new \RuntimeException("cannot connect to $url: $error");
            }
            stream_set_timeout($socket, 10);
            $sockets[] = $socket;
        }
        foreach ($sockets as $socket) {
            fwrite($socket, $request);
        }
        $statuses = [];
        foreach ($sockets as $socket) {
            $answer = (string) stream_get_contents($socket);
            fclose($socket);
            $statuses[] = (int) (explode(' ', $answer, 3)[1] ?? 0);
        }
        return $statuses;
    }

    /**
     * POST $body (GET when null) and return status, lower-cased headers and body.
     *
     * @param array<string, string> $headers
     * @return array{0: int, 1: array<string, string>, 2: string}
     */
    public static function post(string $url, ?string $body, array $headers = []): array
    {
        $lines = ['content-type: application/json'];
        foreach ($headers as $name => $value) {
            $lines[] = "$name: $value";
        }
        $context = stream_context_create(['http' => [
            'method' => $body === null ? 'GET' : 'POST',
            'header' => implode("\r\n", $lines),
            'content' => $body ?? '',
            'ignore_errors' => true,
            'timeout' => 10,
        ]]);
        $answer = @file_get_contents($url, false, $context);
        if ($answer === false) {
            throw new \RuntimeException("cannot reach $url: " . (error_get_last()['message'] ?? '?'));
        }
        $lines = function_exists('http_get_last_response_headers') ? http_get_last_response_headers() : $http_response_header;
        $status = (int) explode(' ', $lines[0])[1];
        $parsed = [];
        foreach (array_slice($lines, 1) as $line) {
            [$name, $value] = array_map('trim', explode(':', $line, 2)) + [1 => ''];
            $parsed[strtolower($name)] = $value;
        }
        return [$status, $parsed, $answer];
    }
}
