#!/usr/bin/env bash
# `cardlane replay --gateway --no-delay` throughput through the real binary (issue 6).
# Usage: benches/replay/run.sh [N] [RUNS]   (builds the release binary first)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
(cd "$ROOT" && cargo build --release --quiet --bin cardlane)
exec python3 "$ROOT/benches/replay/run.py" "$ROOT/target/release/cardlane" "${1:-10000}" "${2:-3}"
