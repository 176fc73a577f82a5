#!/usr/bin/env python3
"""churn: N connect / send a line / read its echo / close cycles against a line-echo server.

usage: Benchmarks/churn.py PID PORT [N]   (loopback only; default 100000 cycles)

Reports the server's open descriptors (/proc/PID/fd) and RSS before, and after the cycles once
the server has settled; exits 1 if an echo was wrong, if descriptors did not come back to their
baseline, or if RSS grew by more than 16 MiB."""
import os, socket, sys, time

pid, port = int(sys.argv[1]), int(sys.argv[2])
cycles = int(sys.argv[3]) if len(sys.argv) > 3 else 100000


def descriptors():
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


base_fds, base_rss = descriptors(), rss_kib()
bad = 0
started = time.time()
for i in range(cycles):
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    line = b"churn %d\n" % i
    conn.sendall(line)
    got = b""
    while not got.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            break
        got += chunk
    bad += got != line
    conn.close()
elapsed = time.time() - started
# Let the server see the last closes.
deadline = time.time() + 10
while descriptors() > base_fds and time.time() < deadline:
    time.sleep(0.1)
fds, rss = descriptors(), rss_kib()
print(f"cycles={cycles} bad={bad} seconds={elapsed:.1f} cycles_per_s={cycles / elapsed:.0f} "
      f"fds_before={base_fds} fds_after={fds} rss_before_kib={base_rss} rss_after_kib={rss} "
      f"rss_growth_kib={rss - base_rss}")
sys.exit(0 if bad == 0 and fds <= base_fds and rss - base_rss < 16 * 1024 else 1)
