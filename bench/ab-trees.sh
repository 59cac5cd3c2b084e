#!/bin/bash
# One wrk round of the service of a built tree, for A/B runs of two trees (docs/performance.md):
#   bench/ab-trees.sh TREE_ROOT LABEL EVENTS_PER_REQUEST SECONDS PROFILE [ENV=VALUE ...]
# TREE_ROOT holds dist/ (and node_modules/); PROFILE=1 adds --cpu-prof (into $PROFILE_DIR, default .).
# Prints: label, load average, server CPU ticks (user+sys) of the measured run, seconds until the
# index caught up, and wrk's WRK_JSON line. Needs wrk, curl, python3, bc.
# The server runs as `npm run bench` runs it: the tree's SERVER_NODE_FLAGS (src/node-flags.ts) and
# LOG_LEVEL=info; an ENV=VALUE argument overrides (LOG_LEVEL=warn gives the figures that
# docs/performance.md quotes from before stop 25, when this script ran at warn without the flags).
set -u
WRK_SCRIPT="$(cd "$(dirname "$0")" && pwd)/wrk/publish.lua"
TREE=$1; LABEL=$2; BATCH=$3; SECS=$4; PROF=$5; shift 5
D=$(mktemp -d -t ab-trees.XXXXXX)
PORT=$((20000 + RANDOM % 5000))
PROFARGS=""
if [ "$PROF" = 1 ]; then PROFARGS="--cpu-prof --cpu-prof-dir=${PROFILE_DIR:-.}/prof-$LABEL"; fi
# A tree from before src/node-flags.ts runs with Node's defaults.
NODE_FLAGS=$(node -p "try { require('$TREE/dist/src/node-flags.js').SERVER_NODE_FLAGS.join(' ') } catch { '' }")
env PORT=$PORT HOST=127.0.0.1 DATA_DIR=$D LOG_LEVEL=info "$@" node $NODE_FLAGS $PROFARGS $TREE/dist/src/main.js > ${PROFILE_DIR:-.}/server-$LABEL.log 2>&1 &
PID=$!
for i in $(seq 1 200); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
# warmup
wrk -t1 -c64 -d2s -s $WRK_SCRIPT http://127.0.0.1:$PORT -- warm-$LABEL-$RANDOM $BATCH 10 >/dev/null 2>&1
T0=$(awk '{print $14+$15}' /proc/$PID/stat)
OUT=$(wrk -t1 -c64 -d${SECS}s --timeout 30s -s $WRK_SCRIPT http://127.0.0.1:$PORT -- run-$LABEL-$RANDOM $BATCH 10 2>&1 | grep WRK_JSON)
T1=$(awk '{print $14+$15}' /proc/$PID/stat)
C0=$(date +%s.%N)
for i in $(seq 1 3000); do Q=$(curl -s http://127.0.0.1:$PORT/stats | python3 -c 'import json,sys; s=json.load(sys.stdin); print(1 if s["queue_size"]==0 and s["unique_processed"]>=s["accepted"] else 0)'); [ "$Q" = 1 ] && break; sleep 0.02; done
CATCH=$(echo "$(date +%s.%N) - $C0" | bc)
LOAD=$(cut -d' ' -f1 /proc/loadavg)
kill -TERM $PID; wait $PID 2>/dev/null
rm -rf $D
echo "$LABEL batch=$BATCH load=$LOAD cputicks=$((T1-T0)) catchup=$CATCH $OUT"
