#!/usr/bin/env python3
"""Operational figures for `cardlane run`: start-to-ready, idle RSS, binary size.

Starts the bundled gateway simulator and the agent (one serial reader on a PTY, hot-plug on)
as real processes, times spawn -> `ready: api on http://ADDR`, lets the agent idle, reads
VmRSS/VmHWM from /proc, then stops it with SIGTERM and times the stop.
Usage: measure.py BINARY [RUNS]
"""
import os, pty, signal, statistics, subprocess, sys, tempfile, time

BIN = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
KEY = "bench-key"
env = dict(os.environ, CARDLANE_API_KEY=KEY, CARDLANE_LOG="warn")

sim = subprocess.Popen([BIN, "gateway-sim", "--listen", "127.0.0.1:0"], env=env,
                       stdout=subprocess.PIPE, text=True)
line = sim.stdout.readline().strip()
assert line.startswith("listening on http://"), line
gateway = line.split(" ", 2)[2]

master, slave = pty.openpty()
pts = os.ttyname(slave)
os.close(slave)

ready_ms, stop_ms, rss_kb, hwm_kb = [], [], [], []
with tempfile.TemporaryDirectory() as d:
    cfg = os.path.join(d, "cardlane.toml")
    with open(cfg, "w") as f:
        f.write(f"""
[gateway]
base_url = "{gateway}"
[queue]
path = "{d}/queue.db"
[api]
listen = "127.0.0.1:0"
token_file = "{d}/api-token"
[[readers]]
id = "front"
device = "serial:{pts}@9600"
[devices]
hotplug = true
""")
    for i in range(RUNS):
        t0 = time.perf_counter()
        p = subprocess.Popen([BIN, "run", "--config", cfg], env=env, stdout=subprocess.PIPE,
                             text=True)
        out = p.stdout.readline()
        t1 = time.perf_counter()
        assert out.startswith("ready: api on http://"), out
        ready_ms.append((t1 - t0) * 1000)
        time.sleep(3)  # idle: reader attached, probe done, nothing to send
        status = open(f"/proc/{p.pid}/status").read()
        fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
        rss_kb.append(int(fields["VmRSS"].split()[0]))
        hwm_kb.append(int(fields["VmHWM"].split()[0]))
        t2 = time.perf_counter()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        stop_ms.append((time.perf_counter() - t2) * 1000)

sim.send_signal(signal.SIGTERM)
sim.wait(timeout=30)
size = os.path.getsize(BIN)
print(f"binary: {BIN} {size} bytes ({size / 2**20:.1f} MiB)")
print(f"start->ready over {RUNS} runs: median {statistics.median(ready_ms):.1f} ms, "
      f"max {max(ready_ms):.1f} ms")
print(f"idle RSS after 3 s: median {statistics.median(rss_kb) / 1024:.1f} MiB "
      f"(peak {max(hwm_kb) / 1024:.1f} MiB)")
print(f"SIGTERM->exit: median {statistics.median(stop_ms):.1f} ms")
