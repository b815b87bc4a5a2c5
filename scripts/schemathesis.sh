#!/usr/bin/env bash
# Fuzzes the local API from outside with schemathesis, against a fresh agent's own
# /v1/openapi.json: `cardlane run` (no reader configured; a temporary queue and token) in
# front of `cardlane gateway-sim`, both on loopback. All checks but use_after_free
# (DELETE /v1/captures/{id} cancels; the capture stays readable, as the document says), a fixed
# seed. GET /v1/events is left out: it is a stream that stays open, which schemathesis would wait
# on until its time-out (tests/api_openapi.rs checks that route). Exits non-zero on any failure
# or error.
#
#   SCHEMATHESIS=/path/to/venv/bin/schemathesis scripts/schemathesis.sh [extra schemathesis args]
#
# Install: python3 -m venv /tmp/st-venv && /tmp/st-venv/bin/pip install schemathesis==4.32.5
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS=${SCHEMATHESIS:-schemathesis}
SEED=${SEED:-1}
MAX_EXAMPLES=${MAX_EXAMPLES:-100}
command -v "$SCHEMATHESIS" >/dev/null || {
    echo "schemathesis not found (set SCHEMATHESIS, or pip install schemathesis==4.32.5)" >&2
    exit 2
}

cargo build --locked --quiet --bin cardlane
BIN=target/debug/cardlane

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Waits (up to 30 s) for a line starting with $2 in file $1 and prints the rest of it.
first_line() {
    local file=$1 prefix=$2
    for _ in $(seq 300); do
        if line=$(grep -m1 "^$prefix" "$file" 2>/dev/null); then
            echo "${line#"$prefix"}"
            return 0
        fi
        sleep 0.1
    done
    echo "no '$prefix' line in $file:" >&2
    cat "$file" >&2
    return 1
}

export CARDLANE_API_KEY=schemathesis-key
export CARDLANE_LOG=warn
unset CARDLANE_QUEUE_KEY

"$BIN" gateway-sim --plain-json >"$WORK/sim.out" 2>"$WORK/sim.err" &
PIDS+=($!)
SIM_URL=$(first_line "$WORK/sim.out" "listening on ")

cat >"$WORK/cardlane.toml" <<TOML
[gateway]
base_url = "$SIM_URL"
[queue]
path = "$WORK/queue.db"
[api]
listen = "127.0.0.1:0"
token_file = "$WORK/api-token"
[devices]
hotplug = false
TOML

"$BIN" run --config "$WORK/cardlane.toml" >"$WORK/agent.out" 2>"$WORK/agent.err" &
PIDS+=($!)
API=$(first_line "$WORK/agent.out" "ready: api on ")
TOKEN=$(cat "$WORK/api-token")

# Up: /v1/health answers.
for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$API/v1/health" || true)
    [ "$code" = 200 ] || [ "$code" = 503 ] && break
    sleep 0.1
done

start=$(date +%s)
status=0
"$SCHEMATHESIS" run "$API/v1/openapi.json" \
    --checks all --exclude-checks use_after_free \
    --seed "$SEED" --max-examples "$MAX_EXAMPLES" \
    -H "Authorization: Bearer $TOKEN" \
    --exclude-path /v1/events \
    --no-color "$@" || status=$?
echo "schemathesis: exit $status, $(($(date +%s) - start)) s"
exit "$status"
