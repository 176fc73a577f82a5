#!/usr/bin/env bash
# What the service features cost silly-echo at the `pingpong` load (100 connections, 16-byte lines,
# one in flight each), driven by silly-bench for every variant so that all are driven alike:
#   plain     silly-echo
#   metrics   silly-echo --metrics-addr, scraped every second while the load runs
#   tls       silly-echo --tls-cert/--tls-key, silly-bench --tls --insecure (ECDSA P-256, TLS 1.3)
# Prints, per round, msgs/s and the server's CPU µs per message (user+sys over the whole run,
# connects and handshakes included), then the medians and the ratios to plain.
#
#   swift build -c release && Benchmarks/service-overhead.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"; seconds="${2:-5}"
echo_bin=.build/release/silly-echo
bench_bin=.build/release/silly-bench
port=9961; metrics_port=9962
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$scratch/key.pem" \
    -out "$scratch/cert.pem" -days 1 -subj /CN=localhost >/dev/null 2>&1

ticks() { awk '{print $14 + $15}' /proc/$1/stat; }

run() {  # run NAME [silly-echo flags] -- [silly-bench flags]
    local name=$1; shift
    local server_flags=() bench_flags=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do server_flags+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    bench_flags=("$@")
    "$echo_bin" --addr 127.0.0.1:$port --log-level error "${server_flags[@]}" >/dev/null 2>&1 &
    local server=$!
    sleep 0.5
    local scraper=""
    if [[ " ${server_flags[*]} " == *" --metrics-addr "* ]]; then
        ( while sleep 1; do
            exec 3<>/dev/tcp/127.0.0.1/$metrics_port && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3 >/dev/null; exec 3>&-
          done ) 2>/dev/null &
        scraper=$!
    fi
    local before; before=$(ticks $server)
    "$bench_bin" --addr 127.0.0.1:$port --clients 100 --size 16 --pipeline 1 --duration "${seconds}s" \
        --threads 1 --json "${bench_flags[@]}" >"$scratch/out.json"
    local after; after=$(ticks $server)
    [ -n "$scraper" ] && kill $scraper 2>/dev/null
    kill $server; wait $server 2>/dev/null || true
    python3 - "$name" "$before" "$after" "$scratch/out.json" <<'PY' | tee -a "$scratch/results"
import json, sys
name, before, after, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
figures = json.load(open(path))
assert figures["errors_total"] == 0, figures
print(f"{name} msgs_per_s={figures['messages_per_second']:.0f} cpu_us_per_msg={(after - before) * 10000 / figures['messages']:.2f}")
PY
}

for round in $(seq "$rounds"); do
    echo "round $round"
    run plain
    run metrics --metrics-addr 127.0.0.1:$metrics_port
    run tls --tls-cert "$scratch/cert.pem" --tls-key "$scratch/key.pem" -- --tls --insecure
done

python3 - "$scratch/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rate, cpu = line.split()
    rows.setdefault(name, []).append((float(rate.split("=")[1]), float(cpu.split("=")[1])))
base = statistics.median(c for _, c in rows["plain"])
print(f"\nmedians over {len(rows['plain'])} rounds:")
for name, values in rows.items():
    cpu = statistics.median(c for _, c in values)
    print(f"{name:8} msgs/s {statistics.median(r for r, _ in values):8.0f}  cpu µs/msg {cpu:6.2f}  ratio to plain {cpu / base:.3f}")
PY
