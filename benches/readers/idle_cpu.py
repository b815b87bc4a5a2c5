#!/usr/bin/env python3
"""Issue 5: CPU time of cardlane over S seconds idle with a reader open (goal < 0.1 s for 60 s).

Opens a PTY pair, keeps the master open and silent (a serial reader that nobody swipes), runs
  cardlane capture --device serial:<pty slave> --seconds S --out <tmp>
and reports the process's utime+stime from /proc/<pid>/stat just before the deadline, the
exact total from wait4() at exit, and per-thread context switches (how often each thread woke).
Usage: benches/readers/idle_cpu.py [path/to/cardlane] [seconds]   (default target/release/cardlane 60)
"""
import os
import subprocess
import sys
import tempfile
import time

exe = sys.argv[1] if len(sys.argv) > 1 else "target/release/cardlane"
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
tick = os.sysconf("SC_CLK_TCK")

master, slave = os.openpty()
slave_name = os.ttyname(slave)
out = tempfile.NamedTemporaryFile(suffix=".capture", delete=False).name


def stat_cpu(path):
    """utime + stime in seconds from a /proc stat file (fields 14 and 15)."""
    with open(path) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / tick


def threads(pid):
    """Per thread: name, CPU seconds, voluntary and involuntary context switches."""
    rows = []
    for tid in sorted(os.listdir("/proc/%d/task" % pid)):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(base + "comm") as f:
                name = f.read().strip()
            st = {}
            with open(base + "status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    st[k] = v.strip()
            rows.append((name, stat_cpu(base + "stat"),
                         int(st["voluntary_ctxt_switches"]), int(st["nonvoluntary_ctxt_switches"])))
        except (FileNotFoundError, ProcessLookupError, KeyError):
            pass
    return rows


cmd = [exe, "capture", "--device", "serial:" + slave_name, "--profile", "idtech-serial",
       "--seconds", str(secs), "--out", out]
print("command:", " ".join(cmd))
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
time.sleep(max(secs - 0.5, 0.1))
near_end = stat_cpu("/proc/%d/stat" % p.pid)
per_thread = threads(p.pid)
_, status, ru = os.wait4(p.pid, 0)
wall = time.monotonic() - t0
err = p.stderr.read().decode(errors="replace").strip()
os.close(master)
os.close(slave)
os.unlink(out)

print("stderr:", err.replace("\n", " | "))
print("exit status:", os.waitstatus_to_exitcode(status))
print("wall: %.2f s" % wall)
print("utime+stime from /proc/%d/stat at %.1f s: %.3f s (clock ticks of %.0f ms)"
      % (p.pid, secs - 0.5, near_end, 1000 / tick))
print("utime+stime from wait4 at exit: user %.4f s + sys %.4f s = %.4f s (goal < 0.1 s)"
      % (ru.ru_utime, ru.ru_stime, ru.ru_utime + ru.ru_stime))
print("wakeups: %d voluntary context switches in total" % ru.ru_nvcsw)
for name, cpu, vol, invol in per_thread:
    print("  thread %-16s cpu %.2f s  voluntary switches %5d (%.1f/s)  involuntary %d"
          % (name, cpu, vol, vol / secs, invol))
