#!/usr/bin/env bash
# Daemon CPU time per request, by thread kind: starts a daemon in a temp dir, runs
# vapora-bench SCENARIO (ping or add with 32 connections and N requests; add-bulk with N
# tasks on one connection) against it, and divides each thread group's CPU time (utime +
# stime from /proc) by N.
#
#   scripts/daemon-cpu.sh add 200000
#   BIN_DIR=/some/other/build scripts/daemon-cpu.sh add-bulk 500000   # A/B another build
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:-add} N=${2:-200000}
BIN_DIR=${BIN_DIR:-$(scripts/build-release.sh)}
WORK=$(mktemp -d /tmp/daemon-cpu.XXXXXX)
export VAPORA_NO_AUTOSTART=1
"$BIN_DIR/vapora" daemon --socket "$WORK/s.sock" --data-dir "$WORK/data" >"$WORK/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
until "$BIN_DIR/vapora" --socket "$WORK/s.sock" ping >/dev/null 2>&1; do
  kill -0 $PID 2>/dev/null || { cat "$WORK/log" >&2; exit 1; }
  sleep 0.05
done
ticks() {  # thread name -> clock ticks
  for t in /proc/$PID/task/*; do echo "$(tr ' ' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done |
    awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
ticks >"$WORK/before"
if [[ "$SCENARIO" == add-bulk ]]; then
  "$BIN_DIR/vapora-bench" --socket "$WORK/s.sock" add-bulk -c 1 --bulk-tasks "$N" | tail -1
else
  "$BIN_DIR/vapora-bench" --socket "$WORK/s.sock" "$SCENARIO" -c 32 -n "$N" | tail -1
fi
# The writer commits behind the answers: wait for it before reading the counters.
until "$BIN_DIR/vapora" --socket "$WORK/s.sock" metrics --json | grep -q '"store_backlog_bytes":0'; do sleep 0.05; done
ticks >"$WORK/after"
HZ=$(getconf CLK_TCK)
join "$WORK/before" "$WORK/after" |
  awk -v n="$N" -v hz="$HZ" '{printf "%-16s %6.2f µs per request\n", $1, ($3 - $2) * 1e6 / hz / n}'
