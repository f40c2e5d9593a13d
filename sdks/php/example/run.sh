#!/bin/sh
# Serve the example on PHP's built-in server (4 workers) and sync it with the engine.
#   PORT (default 4002), DURABLE_URL (default http://localhost:3030); see sync.php for the rest.
set -eu
cd "$(dirname "$0")"
PORT="${PORT:-4002}"
export PORT
export PHP_CLI_SERVER_WORKERS="${PHP_CLI_SERVER_WORKERS:-4}"
export DURABLE_APP_URL="${DURABLE_APP_URL:-http://127.0.0.1:$PORT/}"

php -S "127.0.0.1:$PORT" index.php &
server=$!
stop() {
    # The server's workers outlive it, so stop them too: its children, by parent pid.
    workers=$(ps -A -o pid= -o ppid= | awk -v parent="$server" '$2 == parent { print $1 }')
    kill "$server" $workers 2>/dev/null || true
}
trap stop EXIT
trap 'exit 0' INT TERM
php sync.php
wait "$server"
