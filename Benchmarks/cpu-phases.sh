#!/usr/bin/env bash
# A server's CPU in three windows of one echoload run: the first second (connects and the first
# messages), the next two, and the end (1,000 closes). Ticks of 10 ms, from /proc/PID/stat.
#
#   Benchmarks/cpu-phases.sh '.build/release/silly-step2-echo {port}'
# usage: cpu-phases.sh 'SERVER COMMAND with {port}' [CONNECTIONS SIZE DEPTH]
set -euo pipefail
conns=${2:-1000}; size=${3:-64}; depth=${4:-1}
source "$(dirname "$0")/echoload-kit.sh"
port=9971
start_server "$1" $port
ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
out=$(mktemp); trap 'rm -f "$out"' EXIT
c0=$(ticks)
"$echoload" 127.0.0.1 $port "$conns" 3 "$size" "$depth" >"$out" &
load=$!
sleep 1; c1=$(ticks); sleep 2; c2=$(ticks); wait $load; sleep 0.5; c3=$(ticks)
kill $pid; wait $pid 2>/dev/null || true
echo "ramp $((c1 - c0)) steady $((c2 - c1)) end $((c3 - c2)) $(cut -d' ' -f1,3 "$out")"
