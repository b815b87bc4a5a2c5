#!/usr/bin/env bash
# Side-by-side host DUKPT throughput: cardlane vs npm dukpt@3.0.0 vs PyPI pydukpt==0.1.0.
# Same work in each, one core, fresh derivation per operation: IPEK + current key for
# KSN FFFF9876543210E0AAAA (8 counter bits) + data key (one-way function) + TDES-CBC decrypt of
# an 80-byte track, BDK 0123456789ABCDEFFEDCBA9876543210.
# All three figures are operations per second of CPU time on one core (the machine is shared;
# wall-clock rates mostly measure the other load). Usage: benches/peers/run.sh [SECONDS] (default 3)
set -euo pipefail
SECS="${1:-3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "== installing peers in $TMP" >&2
(cd "$TMP" && npm init -y >/dev/null 2>&1 && npm install --silent --no-audit --no-fund dukpt@3.0.0 >/dev/null)
python3 -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install -q pydukpt==0.1.0

echo "== building cardlane (release)" >&2
(cd "$ROOT" && cargo build --release --quiet)

# The 80-byte ciphertext all three decrypt, made by cardlane itself.
CT="$("$ROOT/target/release/cardlane" dukpt encrypt --bdk 0123456789ABCDEFFEDCBA9876543210 \
  --ksn FFFF9876543210E0AAAA --usage data-request \
  --data "$(printf '3B%.0s' $(seq 1 80))")"

cp "$HERE/peer_npm.js" "$HERE/peer_pydukpt.py" "$TMP/"
NPM_OPS="$(cd "$TMP" && taskset -c 0 node peer_npm.js "$SECS" "$CT" 2>/dev/null || node peer_npm.js "$SECS" "$CT")"
PY_OPS="$(taskset -c 0 "$TMP/venv/bin/python" "$TMP/peer_pydukpt.py" "$SECS" "$CT" 2>/dev/null \
  || "$TMP/venv/bin/python" "$TMP/peer_pydukpt.py" "$SECS" "$CT")"
CL_OUT="$(taskset -c 0 "$ROOT/target/release/cardlane" bench dukpt --seconds "$SECS" --json 2>/dev/null \
  || "$ROOT/target/release/cardlane" bench dukpt --seconds "$SECS" --json)"
echo "$CL_OUT" | sed '$d' >&2
CL_OPS="$(echo "$CL_OUT" | tail -1 | sed -E 's/.*"ops_per_s": *([0-9.]+).*/\1/')"

python3 - "$CL_OPS" "$NPM_OPS" "$PY_OPS" <<'PY'
import sys
cl, npm, py = (float(x) for x in sys.argv[1:4])
print(f"cardlane (Rust)        {cl:12,.0f} ops/s")
print(f"npm dukpt 3.0.0        {npm:12,.0f} ops/s")
print(f"PyPI pydukpt 0.1.0     {py:12,.0f} ops/s")
print(f"ratio vs npm dukpt     {cl/npm:8.1f}x  (goal >= 20x)")
print(f"ratio vs pydukpt       {cl/py:8.1f}x  (goal >= 100x)")
PY
