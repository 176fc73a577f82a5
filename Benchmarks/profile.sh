#!/usr/bin/env bash
# A `perf record` of a server under echoload, in the middle of the load: where its CPU goes.
#
#   Benchmarks/profile.sh step2 '.build/release/silly-step2-echo {port}'
#   Benchmarks/profile.sh pipe '/tmp/echo-bench-cache/nio/release/NIOLineEcho {port}'
#   perf report -i /tmp/profile-step2.data --no-children --sort sym -g none
# usage: profile.sh NAME 'SERVER COMMAND with {port}' [CONNECTIONS SIZE DEPTH]
# (9 s of load; 5 s recorded at 2999 Hz with call graphs, from 2.5 s in.) Prints echoload's line.
set -euo pipefail
name=$1; conns=${3:-1000}; size=${4:-64}; depth=${5:-1}
source "$(dirname "$0")/echoload-kit.sh"
port=9970
start_server "$2" $port
"$echoload" 127.0.0.1 $port "$conns" 9 "$size" "$depth" >"/tmp/profile-$name.load" &
load=$!; sleep 2.5
perf record -F 2999 -g -p $pid -o "/tmp/profile-$name.data" -- sleep 5 >/dev/null 2>&1
wait $load; kill $pid; wait $pid 2>/dev/null || true
cat "/tmp/profile-$name.load"
