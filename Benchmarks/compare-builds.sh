#!/usr/bin/env bash
# Two (or more) silly-echo binaries side by side under one echoload load, interleaved round by
# round: tells a change's cost from the machine's moods. Prints each run, the medians of the
# server's CPU µs per message (user+sys over a SECONDS window in the middle of the load), and the
# median of each round's ratio to the first binary.
#
#   git worktree add /tmp/silly-before <commit> && (cd /tmp/silly-before && swift build -c release --product silly-echo)
#   Benchmarks/compare-builds.sh 7 4 1000 64 1 /tmp/silly-before/.build/release/silly-echo .build/release/silly-echo
# A BINARY with `{port}` in it is a whole server command instead (as compare.py takes it), e.g.
#   Benchmarks/compare-builds.sh 5 4 10000 64 1 '/tmp/silly-before/.build/release/silly Examples/lua/timeout.lua 127.0.0.1:{port}' \
#       '.build/release/silly Examples/lua/timeout.lua 127.0.0.1:{port}'
# usage: compare-builds.sh ROUNDS SECONDS CONNECTIONS SIZE DEPTH BINARY...
set -euo pipefail
rounds=$1; seconds=$2; conns=$3; size=$4; depth=$5; shift 5
source "$(dirname "$0")/echoload-kit.sh"
port=9980
results=$(mktemp); trap 'rm -f "$results" "$results.out"' EXIT
for round in $(seq "$rounds"); do
    # Odd rounds run the binaries in the order given, even rounds in reverse: neither always goes first.
    order=$(seq $#); (( round % 2 == 0 )) && order=$(seq $# -1 1)
    for index in $order; do
        bin=${!index}
        if [[ $bin == *"{port}"* ]]; then
            read -ra command <<<"${bin//\{port\}/$port}"
        else
            command=("$bin" --addr 127.0.0.1:$port --log-level error --max-connections 20000)
        fi
        "${command[@]}" >/dev/null 2>&1 &
        pid=$!; sleep 0.4
        "$echoload" 127.0.0.1 $port "$conns" $((seconds + 2)) "$size" "$depth" >"$results.out" &
        load=$!; sleep 1.5
        before=$(awk '{print $14 + $15}' /proc/$pid/stat); sleep "$seconds"; after=$(awk '{print $14 + $15}' /proc/$pid/stat)
        wait $load; kill $pid; wait $pid 2>/dev/null || true
        rate=$(sed -E 's/.*msgs_per_s=([0-9]+).*/\1/' "$results.out")
        python3 -c "print($index, $rate, ($after - $before) * 10000 / ($rate * $seconds))" >>"$results"
        python3 -c "print($index, $rate, round(($after - $before) * 10000 / ($rate * $seconds), 2))"
    done
done
python3 - "$results" "$@" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for index, binary in enumerate(sys.argv[2:], start=1):
    cpu = [float(r[2]) for r in rows if int(r[0]) == index]
    print(f"{binary}: median cpu µs/msg {statistics.median(cpu):.2f} over {len(cpu)} rounds {[round(x, 2) for x in cpu]}")
# Each round's ratio to the first binary's in the same round: the machine's drift over the
# run cancels out of these, so their median tells a small change from the noise better.
first = [float(r[2]) for r in rows if int(r[0]) == 1]
for index, binary in enumerate(sys.argv[3:], start=2):
    ratios = [float(r[2]) / base for r, base in zip((r for r in rows if int(r[0]) == index), first) if base > 0]
    print(f"{binary}: median of the rounds' ratios to the first {statistics.median(ratios):.3f} {[round(x, 3) for x in ratios]}")
PY
