#!/usr/bin/env bash
# `make demo`: a local cluster (czar + 2 workers), a sample case registered and loaded through Dagster level
# by level (gates included) into a persistent $DAGSTER_HOME; then a reload through the run queue, launched by
# the sensors of a dagster-daemon, and the final status.
set -euo pipefail
BIN=.venv/bin
CASE=${DEMO_CASE:-qcase01}
CASE_DIR="$LOADER_STATE_DIR/cases/$CASE"
QUIET='- DEBUG - |^\s*$|BetaWarning|return SensorDefinition'

$BIN/loader-assets workers up --count 2
if [ ! -f "$CASE_DIR/metadata.json" ]; then
  $BIN/loader-assets sample "$CASE_DIR" --chunks 20 --rows-per-chunk 2000
fi
$BIN/loader-assets register "$CASE_DIR" --comment "make demo sample case"
$BIN/loader-assets selections save failed_"$CASE" "case = '$CASE' AND status = 'failed'" --priority 2 --disabled \
  --comment "make demo: switch its sensor on in the UI to retry failed files"
$BIN/loader-assets load "$CASE" 2>&1 | grep -v -E -e "$QUIET"

echo "== a reload through the run queue: dagster-daemon's scheduled_loads sensor launches the runs"
$BIN/dagster-daemon run -w workspace.yaml > "$LOADER_STATE_DIR/daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
for _ in $(seq 90); do $BIN/loader-assets doctor >/dev/null 2>&1 && break; sleep 1; done  # its first heartbeat
$BIN/loader-assets schedule "case = '$CASE' AND table = 'Filter'" --force --priority 5 --watch
kill $daemon; wait $daemon 2>/dev/null || true
trap - EXIT
$BIN/loader-assets status --case "$CASE"
cat <<MSG

The case is loaded. To look around:
  export LOADER_STATE_DIR=$LOADER_STATE_DIR DAGSTER_HOME=$DAGSTER_HOME
  $BIN/dagster dev -w workspace.yaml        # the UI on http://127.0.0.1:3000, with the daemon
  $BIN/loader-assets select "case = '$CASE' AND level = 3" --format table
  $BIN/loader-assets history 1              # every attempt at notice 1
  make clean                                # stops the local workers, removes the state
MSG
