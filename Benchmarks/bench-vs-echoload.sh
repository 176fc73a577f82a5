#!/usr/bin/env bash
# silly-bench against ../shared/bench/echoload, on the same server (cecho by default) in one run:
# both drive 100 connections x 16-byte lines x depth 1 for SECONDS, ROUNDS times, interleaved.
# usage: Benchmarks/bench-vs-echoload.sh [ROUNDS] [SECONDS] [SERVER-COMMAND-with-{port}]
# Needs `swift build -c release` and the bench kit built once (../shared/bench/compare.py does it).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-5}
server=${3:-/tmp/echo-bench-cache/cecho {port}}
cache=${BENCH_CACHE:-/tmp/echo-bench-cache}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
${server//\{port\}/$port} >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
sleep 0.5
for round in $(seq "$rounds"); do
    e=$("$cache/echoload" 127.0.0.1 "$port" 100 "$seconds" 16 1 | sed 's/.*msgs_per_s=\([0-9.]*\).*/\1/')
    s=$(.build/release/silly-bench --addr "127.0.0.1:$port" --clients 100 --size 16 --pipeline 1 \
        --duration "${seconds}s" --json | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["messages_per_second"]))')
    echo "round $round: echoload $e msg/s, silly-bench $s msg/s, ratio $(python3 -c "print(f'{$s/$e:.2f}')")"
done
