#!/usr/bin/env bash
# `cardlane run` operational figures: start->ready, idle RSS, release binary size.
# Usage: benches/run/run.sh [RUNS]   (builds the release binary first)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
(cd "$ROOT" && cargo build --release --quiet --bin cardlane)
exec python3 "$ROOT/benches/run/measure.py" "$ROOT/target/release/cardlane" "${1:-5}"
