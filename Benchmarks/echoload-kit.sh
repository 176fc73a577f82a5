# Sourced by the benchmark scripts: the kit's load generator, and a server started from a
# command with `{port}` in it (as compare.py takes one).
echoload=/tmp/echo-bench-cache/echoload
[ -x "$echoload" ] || { echo "build the kit first: ../shared/bench/compare.py builds $echoload" >&2; exit 1; }

# start_server 'COMMAND with {port}' PORT: starts it in the background, sets `pid`, gives it 0.5 s.
start_server() {
    local command
    read -ra command <<<"${1//\{port\}/$2}"
    "${command[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep 0.5
}
