#!/usr/bin/env bash
# Run the shared benchmark (../shared/bench/bench.py) for the edge runner against Node-RED.
#
#   bash bench/run.sh                      # 5 repeats, all workloads, JSON to /tmp/bench.json
#   bash bench/run.sh --only w1,l1 --repeats 3
#   RUNNER_LOOP=asyncio bash bench/run.sh  # plain asyncio instead of uvloop
#
# Extra arguments go to bench.py. Node-RED 5.0.7 is installed under /tmp by nodered.sh on first
# use (needs the npm registry once). Run nothing else on the machine meanwhile.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
SHARED="${SHARED:-$(dirname "$REPO")/shared}"
PY="${PY:-$REPO/.venv/bin/python}"
LOOP="${RUNNER_LOOP:-auto}"
NR="$(bash "$SHARED/bench/nodered.sh")"
OURS="$PY -m edge_runner serve --host 127.0.0.1 --port {port} --userdir {userdir} --loop $LOOP"
cd /tmp
exec python3 "$SHARED/bench/bench.py" --cmd "$OURS" --flavor python --vs "$NR" --vs-flavor js \
    --repeats 5 --json /tmp/bench.json "$@"
