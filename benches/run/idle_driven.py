#!/usr/bin/env python3
"""Issue 12: CPU time of `cardlane run` over S seconds idle with a driven reader (NEO 2, on
`reader-sim`) open and its watchdog pinging (goal < 0.1 s per 60 s).

Starts the gateway simulator, `cardlane reader-sim --no-card` on a PTY link and the agent with
that reader (`activate = "on-capture"`, nothing armed) as real processes, waits until the
reader finished its open sequence, then reads the agent's utime+stime from /proc at the start
and end of the window, the pings the simulator logged in it, and per-thread wakeups.
Usage: benches/run/idle_driven.py [path/to/cardlane] [seconds]   (default target/release/cardlane 60)
"""
import json, os, signal, subprocess, sys, tempfile, threading, time

exe = sys.argv[1] if len(sys.argv) > 1 else "target/release/cardlane"
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
tick = os.sysconf("SC_CLK_TCK")
env = dict(os.environ, CARDLANE_API_KEY="bench-key", CARDLANE_LOG="warn")


def stat_cpu(path):
    with open(path) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / tick


def threads(pid):
    rows = []
    for tid in sorted(os.listdir("/proc/%d/task" % pid)):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            name = open(base + "comm").read().strip()
            st = dict(l.split(":", 1) for l in open(base + "status") if ":" in l)
            rows.append((name, stat_cpu(base + "stat"), int(st["voluntary_ctxt_switches"])))
        except (FileNotFoundError, ProcessLookupError, KeyError):
            pass
    return rows


with tempfile.TemporaryDirectory() as d:
    gw = subprocess.Popen([exe, "gateway-sim", "--listen", "127.0.0.1:0", "--db", d + "/gw.db"],
                          env=env, stdout=subprocess.PIPE, text=True)
    line = gw.stdout.readline().strip()
    assert line.startswith("listening on http://"), line
    gateway = line.split(" ", 2)[2]
    link = d + "/neo2"
    sim = subprocess.Popen([exe, "reader-sim", "--profile", "idtech-neo2-serial", "--link", link,
                            "--no-card"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert '"ready":true' in sim.stdout.readline()
    log = []
    threading.Thread(target=lambda: [log.append((time.monotonic(), json.loads(l)))
                                     for l in sim.stderr], daemon=True).start()
    cfg = d + "/cardlane.toml"
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
id = "kiosk"
device = "serial:{link}@115200"
profile = "idtech-neo2-serial"
activate = "on-capture"
[devices]
hotplug = false
""")
    cmd = [exe, "run", "--config", cfg]
    print("command:", " ".join(cmd), "(reader-sim --no-card on", link + ")")
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().startswith("ready: api on http://")
    end = time.monotonic() + 30
    while not any(v.get("cmd") == "04-00" for _, v in log):
        assert time.monotonic() < end, "reader never opened"
        time.sleep(0.05)
    time.sleep(1)  # let start-up settle
    t0 = time.monotonic()
    c0 = stat_cpu("/proc/%d/stat" % p.pid)
    time.sleep(secs)
    c1 = stat_cpu("/proc/%d/stat" % p.pid)
    t1 = time.monotonic()
    per_thread = threads(p.pid)
    pings = [v for t, v in log if t0 <= t <= t1 and v.get("cmd") == "18-01"]
    others = [v["cmd"] for t, v in log if t0 <= t <= t1 and v.get("cmd") not in (None, "18-01")]
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=30)
    for q in (sim, gw):
        q.terminate()
        q.wait(timeout=30)
    print("window: %.1f s; agent utime+stime %.3f s (clock ticks of %.0f ms; goal < 0.1 s per 60 s)"
          % (t1 - t0, c1 - c0, 1000 / tick))
    print("watchdog: %d pings answered in the window (%s); other commands: %s"
          % (len(pings), ", ".join(v.get("answer") or "-" for v in pings), others or "none"))
    print("agent exit status after SIGTERM:", rc)
    for name, cpu, vol in per_thread:
        print("  thread %-16s cpu %.2f s  voluntary switches %6d" % (name, cpu, vol))
