#!/usr/bin/env bash
# The concurrency runtime's calls per echoed message, counted (not sampled) with uprobes: executor
# switches (`swift_task_switch`), task allocations (an async callee's frame), continuations and
# enqueues, beside the server's write(2) calls, over a 2 s `echoload 100 × 64 B` run (depth 1 unless given).
# Counts do not move with the machine's moods as CPU time does. Needs root (perf probe).
#
#   Benchmarks/count-switches.sh '.build/release/silly-echo --addr 127.0.0.1:{port} --log-level error'
#   Benchmarks/count-switches.sh '.build/release/silly-step2-echo {port}'
# usage: count-switches.sh 'SERVER COMMAND with {port}' [DEPTH, default 1]
set -euo pipefail
source "$(dirname "$0")/echoload-kit.sh"
runtime=$(ldd "$(command -v "${1%% *}")" | awk '/libswift_Concurrency/ {print $3}')
for function in swift_task_switch swift_task_alloc swift_continuation_init swift_task_enqueue; do
    perf probe -q -x "$runtime" --add "$function" 2>/dev/null || true  # already there: fine
done
port=9975
start_server "$1" $port
events=probe_libswift_Concurrency:swift_task_switch,probe_libswift_Concurrency:swift_task_alloc
events+=,probe_libswift_Concurrency:swift_continuation_init,probe_libswift_Concurrency:swift_task_enqueue
# Counted for exactly the load's run (its 100 connects and closes included): per message, exact.
counts=$(perf stat -x, -e "$events" -e syscalls:sys_enter_write -p "$pid" -- \
    "$echoload" 127.0.0.1 $port 100 2 64 "${2:-1}" 2>&1 >/tmp/count-switches.load)
kill $pid; wait $pid 2>/dev/null || true
python3 - "$counts" "$(cat /tmp/count-switches.load)" <<'PY'
import re, sys
counts = {line.split(',')[2].split(':')[-1]: int(line.split(',')[0]) for line in sys.argv[1].splitlines() if line.count(',') > 2 and line.split(',')[0].isdigit()}
messages = int(re.search(r'msgs=(\d+)', sys.argv[2]).group(1))
counts['write(2)'] = counts.pop('sys_enter_write')
for name, count in counts.items():
    print(f"{name:24s} {count / messages:5.2f} per message ({count} over {messages} messages)")
PY
