"""`cardlane replay --gateway URL --no-delay` on one capture of N distinct swipes (issue 6):
swipes/s through the real binary, from process start to exit, into the bundled simulator.

Usage: benches/replay/run.sh [N] [RUNS]   (builds the release binary first)
The capture is a keyboard-wedge capture (clear Track 1 + Track 2, Luhn-valid test PANs made
unique by the swipe number), so the run needs --allow-clear; nothing in it is a real card.
`--max-records N`: the burst is larger than the default cap of 1,000 held records, which
would otherwise refuse (loudly, exit 1) what the gateway has not answered yet.
"""
import json, os, subprocess, sys, tempfile, time

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
KEY = "bench-key"
env = dict(os.environ, CARDLANE_API_KEY=KEY, CARDLANE_LOG="warn")


def luhn_digit(body):
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def capture(path, n):
    with open(path, "w") as f:
        f.write("# cardlane capture v1\n# profile: generic-keyboard-wedge\n# transport: keyboard\n")
        f.write("# source: synthetic (benches/replay/run.py); test PANs only\n")
        for i in range(n):
            body = "4%014d" % i
            pan = body + str(luhn_digit(body))
            f.write("+0ms text %%B%s^BENCH/CARD^29121010000000000?;%s=29121010000000000?\\r\n"
                    % (pan, pan))


with tempfile.TemporaryDirectory() as d:
    cap = os.path.join(d, "bench.capture")
    capture(cap, N)
    sim = subprocess.Popen([BIN, "gateway-sim", "--listen", "127.0.0.1:0"], env=env,
                           stdout=subprocess.PIPE, text=True)
    line = sim.stdout.readline().strip()
    assert line.startswith("listening on http://"), line
    gateway = line.split(" ", 2)[2]
    try:
        for run in range(RUNS):
            queue = os.path.join(d, "q%d.db" % run)
            t0 = time.monotonic()
            p = subprocess.run([BIN, "replay", "--gateway", gateway, "--queue", queue,
                                "--no-delay", "--allow-clear", "--max-records", str(N), cap],
                               env=env, capture_output=True, text=True)
            dt = time.monotonic() - t0
            outcomes = {}
            for l in p.stdout.splitlines():
                try:
                    o = json.loads(l).get("outcome")
                except ValueError:
                    continue
                outcomes[o] = outcomes.get(o, 0) + 1
            print("replay %d swipes --no-delay: exit %d in %.2f s = %.0f swipes/s; outcomes %s"
                  % (N, p.returncode, dt, N / dt, json.dumps(outcomes, sort_keys=True)))
    finally:
        sim.terminate()
        sim.wait(timeout=30)
