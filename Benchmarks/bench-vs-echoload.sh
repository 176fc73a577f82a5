#!/usr/bin/env bash
# silly-bench against ../shared/bench/echoload, on the same server (cecho by default) in one run:
# both drive 100 connections x 16-byte lines x depth 1 for SECONDS, ROUNDS times, interleaved,
# taking turns at going first. Prints each round, then the median ratio and each client's CPU
# (user+sys) per message, the figure that moves least with the machine's noise.
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
results=$(mktemp)
trap 'kill $pid 2>/dev/null; rm -f "$results"' EXIT
sleep 0.5

# Runs a client under /usr/bin/time; prints "MSGS_PER_S CPU_SECONDS MESSAGES".
echoload() {
    /usr/bin/time -f "%U %S" -o "$results.time" "$cache/echoload" 127.0.0.1 "$port" 100 "$seconds" 16 1 >"$results.out"
    python3 - "$results.out" "$results.time" <<'PY'
import re, sys
out = open(sys.argv[1]).read(); user, system = map(float, open(sys.argv[2]).read().split()[-2:])
print(re.search(r"msgs_per_s=([0-9.]+)", out).group(1), user + system, re.search(r"msgs=([0-9]+)", out).group(1))
PY
}
sillybench() {
    /usr/bin/time -f "%U %S" -o "$results.time" .build/release/silly-bench --addr "127.0.0.1:$port" --clients 100 \
        --size 16 --pipeline 1 --duration "${seconds}s" --json >"$results.out"
    python3 - "$results.out" "$results.time" <<'PY'
import json, sys
figures = json.load(open(sys.argv[1])); user, system = map(float, open(sys.argv[2]).read().split()[-2:])
print(figures["messages_per_second"], user + system, figures["messages"])
PY
}

for round in $(seq "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then e=$(echoload); s=$(sillybench); else s=$(sillybench); e=$(echoload); fi
    echo "$e $s" >>"$results"
    python3 -c "
e, ec, em, s, sc, sm = map(float, '$e $s'.split())
print(f'round $round: echoload {e:.0f} msg/s ({ec / em * 1e6:.1f} µs cpu/msg), silly-bench {s:.0f} msg/s ({sc / sm * 1e6:.1f} µs cpu/msg), ratio {s / e:.2f}')"
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
ratio = statistics.median(s / e for e, _, _, s, _, _ in rows)
ecpu = statistics.median(ec / em * 1e6 for _, ec, em, _, _, _ in rows)
scpu = statistics.median(sc / sm * 1e6 for _, _, _, _, sc, sm in rows)
print(f"median over {len(rows)} rounds: msgs/s ratio {ratio:.2f}; client cpu µs/msg: echoload {ecpu:.1f}, silly-bench {scpu:.1f}")
PY
