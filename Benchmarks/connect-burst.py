#!/usr/bin/env python3
"""connect-burst: N connects to a listening server as fast as one client can make them.

usage: Benchmarks/connect-burst.py PORT [N] [ROUNDS]   (loopback only; defaults 4000 connects, 2 rounds)

Each round opens N non-blocking connects at once, waits until each is established (or fails), then
closes them all. It reports the slowest connect and how the kernel's TcpExt counters
ListenOverflows, ListenDrops and TCPSynRetrans (from /proc/net/netstat) moved: a server that
drains its accept queue on every wakeup leaves them unmoved, so no connect waits for a 1-second
SYN retransmit. (The slowest connect is timed from its connect() call to when this one-threaded
client sees it established, after issuing them all: on a slow machine it can pass a second with
no retransmit. TCPSynRetrans is the count to judge by.) Needs N open descriptors (ulimit -n)."""
import errno, selectors, socket, sys, time


def listen_counters():
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], map(int, values.split()[1:])))
            return table.get("ListenOverflows", 0), table.get("ListenDrops", 0), table.get("TCPSynRetrans", 0)
    return 0, 0, 0


def burst(port, n):
    selector = selectors.DefaultSelector()
    started = {}
    slowest = 0.0
    failed = 0
    socks = []
    t0 = time.monotonic()
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        now = time.monotonic()
        if err == 0:
            socks.append(s)
            continue
        if err not in (errno.EINPROGRESS, errno.EAGAIN):
            failed += 1
            s.close()
            continue
        started[s] = now
        selector.register(s, selectors.EVENT_WRITE)
    deadline = time.monotonic() + 10
    while started and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            s = key.fileobj
            selector.unregister(s)
            elapsed = time.monotonic() - started.pop(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                slowest = max(slowest, elapsed)
                socks.append(s)
            else:
                failed += 1
                s.close()
    failed += len(started)
    total = time.monotonic() - t0
    for s in socks + list(started):
        s.close()
    return len(socks), failed, slowest, total


def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    for r in range(rounds):
        before = listen_counters()
        ok, failed, slowest, total = burst(port, n)
        after = listen_counters()
        print(f"round={r + 1} connects={n} ok={ok} failed={failed} slowest_ms={slowest * 1000:.1f} "
              f"total_s={total:.2f} listen_overflows={after[0] - before[0]} listen_drops={after[1] - before[1]} "
              f"syn_retransmits={after[2] - before[2]}")
        time.sleep(1)


if __name__ == "__main__":
    main()
