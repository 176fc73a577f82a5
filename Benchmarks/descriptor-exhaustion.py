#!/usr/bin/env python3
"""Descriptor exhaustion: run silly-echo with 64 descriptors, connect more clients than that.

Usage: Benchmarks/descriptor-exhaustion.py [SILLY_ECHO] [PORT]
Prints the server's CPU ticks (1/100 s) over 3 s while it is out of descriptors, how many of the
connections it holds still echo, how many of the ones that waited are served once descriptors free
up, and the log lines about it. Needs `prlimit` (util-linux).
"""
import socket, subprocess, sys, time

binary = sys.argv[1] if len(sys.argv) > 1 else ".build/release/silly-echo"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9993
# --max-connections past what 64 descriptors allow: the default would be lowered to fit (clients
# beyond it told the server is full), and the case here is accepting with no descriptor left.
server = subprocess.Popen(["prlimit", "--nofile=64:64", binary, "--addr", f"127.0.0.1:{port}", "--max-connections", "1000"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
time.sleep(1.0)

def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return int(fields[11]) + int(fields[12])

def echoes(conns, line):
    count = 0
    for conn in conns:
        conn.settimeout(3)
        try:
            conn.sendall(line)
            if conn.recv(len(line)) == line:
                count += 1
        except OSError:
            pass
    return count

held = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
time.sleep(0.5)
before = cpu_ticks(server.pid)
time.sleep(3)
print("server CPU ticks over 3 s out of descriptors:", cpu_ticks(server.pid) - before)
print("held connections that still echo: %d of 20" % echoes(held[:20], b"x\n"))
for conn in held[:60]:
    conn.close()
time.sleep(2.5)
print("waiting connections served once descriptors freed: %d of 40" % echoes(held[60:], b"y\n"))
server.terminate()
log = server.communicate(timeout=10)[0]
print("\n".join(line for line in log.splitlines() if "accept failed" in line or "limit" in line))
