#!/usr/bin/env bash
# silly-echo at the `many` load (1,000 connections, 64-byte lines, depth 1, echoload from
# ../shared/bench): one process with 1 thread, one with 2, and 2 processes of 1 thread sharing the
# port with --reuse-port. Prints msgs/s and server CPU µs per message (all server processes).
#
#   swift build -c release && Benchmarks/threads-and-processes.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; seconds="${2:-5}"
echoload=/tmp/echo-bench-cache/echoload
[ -x "$echoload" ] || { echo "build the kit first: ../shared/bench/compare.py builds $echoload" >&2; exit 1; }
bin=.build/release/silly-echo
port=9960
load_out=$(mktemp); trap 'rm -f "$load_out"' EXIT

ticks() { local sum=0; for pid in "$@"; do sum=$((sum + $(awk '{print $14 + $15}' /proc/$pid/stat))); done; echo $sum; }

run() {  # run NAME PROCESSES THREADS
    local name=$1 processes=$2 threads=$3 pids=() flags=()
    [ "$processes" -gt 1 ] && flags=(--reuse-port)
    for _ in $(seq "$processes"); do
        "$bin" --addr 127.0.0.1:$port --threads "$threads" --log-level error --max-connections 20000 "${flags[@]}" >/dev/null 2>&1 &
        pids+=($!)
        sleep 0.3
    done
    "$echoload" 127.0.0.1 $port 1000 $((seconds + 2)) 64 1 >"$load_out" &
    local load=$!
    sleep 1.5
    local before; before=$(ticks "${pids[@]}")
    sleep "$seconds"
    local after; after=$(ticks "${pids[@]}")
    wait $load
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    local rate; rate=$(sed -E 's/.*msgs_per_s=([0-9]+).*/\1/' "$load_out")
    python3 -c "print(f'$name: msgs/s={$rate} cpu_us/msg={($after - $before) * 10000 / ($rate * $seconds):.2f}')"
}

for round in $(seq "$rounds"); do
    echo "round $round"
    run "1 process, 1 thread " 1 1
    run "1 process, 2 threads" 1 2
    run "2 processes × 1 thread (--reuse-port)" 2 1
done
