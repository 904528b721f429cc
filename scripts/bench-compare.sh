#!/usr/bin/env bash
# Runs vapora-bench and, where installed, the peers a user would otherwise pick — Redis used
# as a queue (redis-server + redis-benchmark), task-spooler (tsp) and pueue — on this
# machine in this run, with matching settings, and prints vapora's figures beside theirs.
#
#   scripts/bench-compare.sh            # full sizes (a few minutes)
#   QUICK=1 scripts/bench-compare.sh    # small sizes, to check the script itself
#
# Matching settings: every peer on a Unix socket in a private temp dir; Redis with
# `appendonly yes` and `appendfsync everysec` (its durable-but-not-fsync-per-write mode,
# closest to vapora's default `--sync normal`); one-shot commands timed by hyperfine with
# the same options for vapora, tsp and pueue.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${QUICK:-}" ]]; then
  N=2000 RUNS=30 BULK=20000 LIST=2000 PUEUE_TASKS=200 ROUNDS=1 WORK_TASKS=300
else
  N=100000 RUNS=300 BULK=1000000 LIST=100000 PUEUE_TASKS=2000 ROUNDS=${ROUNDS:-5} WORK_TASKS=5000
fi

WORK=$(mktemp -d /tmp/bench-compare.XXXXXX)
cleanup() {
  [[ -n "${REDIS_PID:-}" ]] && kill "$REDIS_PID" 2>/dev/null || true
  [[ -n "${PUEUE_CONFIG:-}" ]] && pueue -c "$PUEUE_CONFIG" shutdown >/dev/null 2>&1 || true
  [[ -n "${TS_SOCKET:-}" ]] && tsp -K >/dev/null 2>&1 || true
  [[ -n "${VAPORA_PID:-}" ]] && kill "$VAPORA_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# The binaries the README installs, installed the README's way into this run's temp dir.
scripts/install.sh --root "$WORK/installed" --quiet
VAPORA=$WORK/installed/bin/vapora
BENCH=$WORK/installed/bin/vapora-bench

have() { command -v "$1" >/dev/null 2>&1; }
RESULTS=$WORK/results.tsv   # name <TAB> value <TAB> unit
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; echo "  $1: $2 $3" >&2; }

# Median wall time of a command in milliseconds, by hyperfine (no shell in between).
median_ms() {
  hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$WORK/h.json" "$@" >/dev/null 2>&1
  python3 -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$WORK/h.json"
}

echo "== machine" >&2
uname -srm >&2
grep -m1 "model name" /proc/cpuinfo >&2 || true
nproc >&2

echo "== vapora (vapora-bench, a fresh daemon per scenario, --sync normal)" >&2
"$BENCH" --json -c 1,32 -n "$N" --bulk-tasks "$BULK" --list-tasks "$LIST" \
  --slow-runs 5 ping add-bulk list >"$WORK/vapora.json"
python3 - "$WORK/vapora.json" >>"$RESULTS" <<'PY'
import json, sys
for row in json.load(open(sys.argv[1])):
    key = f'vapora {row["scenario"]} {row["setting"]}'
    if row["scenario"] == "list":
        print(f'{key}\t{row["p50_us"]/1000:.1f}\tms')
    else:
        print(f'{key}\t{row["ops_per_sec"]:.0f}\t{row["unit"]}/s')
PY
cat "$RESULTS" >&2

# One-shot commands, all timed the same way by hyperfine.
if have hyperfine; then
  mkdir -p "$WORK/vapora"
  "$VAPORA" daemon --socket "$WORK/vapora/v.sock" --data-dir "$WORK/vapora/data" \
    >"$WORK/vapora/log" 2>&1 &
  VAPORA_PID=$!
  export VAPORA_SOCKET=$WORK/vapora/v.sock VAPORA_NO_AUTOSTART=1
  until "$VAPORA" ping >/dev/null 2>&1; do sleep 0.05; done
  record "vapora oneshot task add" "$(median_ms "$VAPORA task add hello")" ms
  record "/bin/true (process start floor)" "$(median_ms /bin/true)" ms

  if have tsp; then
    export TS_SOCKET=$WORK/tsp.sock TS_MAXFINISHED=100000 TMPDIR=$WORK
    tsp -S 1 >/dev/null
    record "tsp -n true" "$(median_ms 'tsp -n true')" ms
    tsp -K >/dev/null 2>&1 || true
    unset TS_SOCKET
  fi

  if have pueue && have pueued; then
    PUEUE_CONFIG=$WORK/pueue.yml
    mkdir -p "$WORK/pueue/data" "$WORK/pueue/run"
    cat >"$PUEUE_CONFIG" <<YML
shared:
  pueue_directory: $WORK/pueue/data
  runtime_directory: $WORK/pueue/run
  use_unix_socket: true
  unix_socket_path: $WORK/pueue/pueue.sock
YML
    pueued -c "$PUEUE_CONFIG" >"$WORK/pueue/log" 2>&1 &
    until pueue -c "$PUEUE_CONFIG" status >/dev/null 2>&1; do sleep 0.05; done
    # Paused, so that added tasks stay queued as they do in vapora's list scenario.
    pueue -c "$PUEUE_CONFIG" pause >/dev/null
    record "pueue add (empty queue)" "$(median_ms "pueue -c $PUEUE_CONFIG add -- true")" ms
    for ((i = 0; i < PUEUE_TASKS; i++)); do pueue -c "$PUEUE_CONFIG" add -- true >/dev/null; done
    count=$(pueue -c "$PUEUE_CONFIG" status --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tasks"]))')
    # A tenth of the runs: each takes a fifth of a second.
    status_ms=$(RUNS=$(( RUNS / 10 > 5 ? RUNS / 10 : 5 )) median_ms "pueue -c $PUEUE_CONFIG status --json")
    record "pueue status --json ($count tasks)" "$status_ms" ms
    pueue -c "$PUEUE_CONFIG" shutdown >/dev/null 2>&1 || true
    unset PUEUE_CONFIG
  fi
  kill "$VAPORA_PID"; wait "$VAPORA_PID" 2>/dev/null || true; unset VAPORA_PID
else
  echo "hyperfine not installed: one-shot comparisons skipped" >&2
fi

# Running commands: WORK_TASKS × `true`, 4 at once. vapora-bench times `vapora work -j 4`
# over a queue filled first, and `xargs -P 4` (the machine's spawn limit) in the same run;
# tsp runs each task as it is added (`tsp -n true`, one command per task, as a user
# queues them), so its figure includes its one-shot adds.
echo "== running commands: $WORK_TASKS x true, 4 at once" >&2
"$BENCH" --json --vapora "$VAPORA" --work-tasks "$WORK_TASKS" --work-jobs 4 work \
  >"$WORK/work.json"
python3 - "$WORK/work.json" >>"$RESULTS" <<'PY'
import json, sys
for row in json.load(open(sys.argv[1])):
    name = "xargs -P 4 sh -c true" if row["setting"].startswith("xargs") else "vapora work -j 4"
    print(f'{name}\t{row["ops_per_sec"]:.0f}\ttasks/s')
PY
if have tsp; then
  export TS_SOCKET=$WORK/tsp-work.sock TS_MAXFINISHED=$((WORK_TASKS + 10)) TMPDIR=$WORK
  tsp -S 4 >/dev/null
  start=$(date +%s.%N)
  for ((i = 0; i < WORK_TASKS; i++)); do tsp -n true >/dev/null; done
  # Polled: tsp has no way to wait for every job at once.
  until [[ $(tsp -l | grep -c ' finished ') -ge $WORK_TASKS ]]; do sleep 0.05; done
  end=$(date +%s.%N)
  record "tsp -S 4, tsp -n true each" "$(python3 -c "print('%.0f' % ($WORK_TASKS / ($end - $start)))")" tasks/s
  tsp -K >/dev/null 2>&1 || true
  unset TS_SOCKET
fi
if have pueue && have pueued; then
  # pueue runs a few dozen tasks a second: 300 of them, queued while paused (as vapora's
  # are queued first), then run 4 at once from `pueue start` to the end of `pueue wait`.
  PUEUE_WORK=$(( WORK_TASKS < 300 ? WORK_TASKS : 300 ))
  PUEUE_CONFIG=$WORK/pueue-work.yml
  mkdir -p "$WORK/pueue-work/data" "$WORK/pueue-work/run"
  cat >"$PUEUE_CONFIG" <<YML
shared:
  pueue_directory: $WORK/pueue-work/data
  runtime_directory: $WORK/pueue-work/run
  use_unix_socket: true
  unix_socket_path: $WORK/pueue-work/pueue.sock
YML
  pueued -c "$PUEUE_CONFIG" >"$WORK/pueue-work/log" 2>&1 &
  until pueue -c "$PUEUE_CONFIG" status >/dev/null 2>&1; do sleep 0.05; done
  pueue -c "$PUEUE_CONFIG" parallel 4 >/dev/null
  pueue -c "$PUEUE_CONFIG" pause >/dev/null
  for ((i = 0; i < PUEUE_WORK; i++)); do pueue -c "$PUEUE_CONFIG" add -- true >/dev/null; done
  start=$(date +%s.%N)
  pueue -c "$PUEUE_CONFIG" start >/dev/null
  pueue -c "$PUEUE_CONFIG" wait >/dev/null
  end=$(date +%s.%N)
  record "pueue parallel 4 ($PUEUE_WORK tasks)" "$(python3 -c "print('%.1f' % ($PUEUE_WORK / ($end - $start)))")" tasks/s
  pueue -c "$PUEUE_CONFIG" shutdown >/dev/null 2>&1 || true
  unset PUEUE_CONFIG
fi

if have redis-server && have redis-benchmark; then
  mkdir -p "$WORK/redis"
  redis-server --port 0 --unixsocket "$WORK/redis/redis.sock" --dir "$WORK/redis" \
    --appendonly yes --appendfsync everysec --save '' --daemonize no \
    >"$WORK/redis/log" 2>&1 &
  REDIS_PID=$!
  until redis-cli -s "$WORK/redis/redis.sock" ping >/dev/null 2>&1; do sleep 0.05; done
  lpush() {  # clients pipeline -> requests per second
    redis-benchmark -s "$WORK/redis/redis.sock" -t lpush -n "$N" -c "$1" -P "$2" --csv 2>/dev/null |
      python3 -c 'import csv,sys; rows=list(csv.reader(sys.stdin)); print("%.0f" % float(rows[-1][1]))'
  }
  record "redis LPUSH c=50 P=16" "$(lpush 50 16)" requests/s
  # Single adds against single LPUSHes, alternating, ROUNDS times: this VM drifts by up to
  # 25 % from one minute to the next, so figures taken minutes apart would compare the
  # minutes, not the programs. The medians of the rounds (and of each round's ratio) go
  # into the tables.
  echo "== single adds vs LPUSH, $ROUNDS alternating rounds" >&2
  for ((round = 1; round <= ROUNDS; round++)); do
    "$BENCH" --json -c 1,32 -n "$N" add >"$WORK/add.json"
    python3 - "$WORK/add.json" "$round" >>"$RESULTS" <<'PY'
import json, sys
for row in json.load(open(sys.argv[1])):
    print(f'round {sys.argv[2]} vapora add {row["setting"]}\t{row["ops_per_sec"]:.0f}\trequests/s')
PY
    record "round $round redis LPUSH c=1" "$(lpush 1 1)" requests/s
    record "round $round redis LPUSH c=32" "$(lpush 32 1)" requests/s
  done
  kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; unset REDIS_PID
else
  echo "redis-server/redis-benchmark not installed: Redis comparisons skipped" >&2
fi

echo >&2
python3 - "$RESULTS" <<'PY'
import sys
values = {}
for line in open(sys.argv[1]):
    name, value, unit = line.rstrip("\n").split("\t")
    values[name] = (float(value), unit)

def get(name):
    return values.get(name, (None, None))[0]

# The alternating rounds: medians of each figure, and of each round's ratio.
import statistics
rounds = {}
for name, (value, unit) in list(values.items()):
    if name.startswith("round "):
        _, number, rest = name.split(" ", 2)
        rounds.setdefault(rest, {})[int(number)] = value
        del values[name]
for rest, by_round in rounds.items():
    values[rest] = (statistics.median(by_round.values()), "requests/s")
round_ratios = {}
for c in ("1", "32"):
    ours, theirs = rounds.get(f"vapora add c={c}", {}), rounds.get(f"redis LPUSH c={c}", {})
    ratios = [ours[r] / theirs[r] for r in ours if r in theirs]
    if ratios:
        round_ratios[c] = (statistics.median(ratios), min(ratios), max(ratios), len(ratios))

print("| figure | value |")
print("|---|---|")
for name, (value, unit) in values.items():
    print(f"| {name} | {value:,.1f} {unit} |" if value < 100 else f"| {name} | {value:,.0f} {unit} |")
print()
# (what, vapora figure, peer figure, higher is better, target ratio)
comparisons = [
    ("add c=1 vs redis LPUSH c=1 (medians of the rounds)", "vapora add c=1", "redis LPUSH c=1", True, 1.25),
    ("add c=32 vs redis LPUSH c=32 (medians of the rounds)", "vapora add c=32", "redis LPUSH c=32", True, 1.2),
    ("add-bulk (best) vs redis LPUSH pipelined", "vapora add-bulk best", "redis LPUSH c=50 P=16", True, None),
    ("oneshot add vs tsp -n true", "vapora oneshot task add", "tsp -n true", False, 1.0),
    ("oneshot add vs pueue add", "vapora oneshot task add", "pueue add (empty queue)", False, None),
    ("work -j 4 vs xargs -P 4 (true)", "vapora work -j 4", "xargs -P 4 sh -c true", True, 0.8),
    ("work -j 4 vs tsp -S 4 (true)", "vapora work -j 4", "tsp -S 4, tsp -n true each", True, None),
]
for name in [k for k in values if k.startswith("pueue parallel 4")]:
    comparisons.append(("work -j 4 vs pueue parallel 4 (true)", "vapora work -j 4", name, True, None))
bulk = [v for k, (v, _) in values.items() if k.startswith("vapora add-bulk")]
if bulk:
    values["vapora add-bulk best"] = (max(bulk), "tasks/s")
# Listing: time per task listed, since the queues differ in size.
import re
for ours in [k for k in values if k.startswith("vapora list")]:
    for theirs in [k for k in values if k.startswith("pueue status")]:
        n_ours = int(re.search(r"tasks=(\d+)", ours).group(1))
        n_theirs = int(re.search(r"\((\d+) tasks\)", theirs).group(1))
        values["vapora list per task"] = (values[ours][0] * 1000 / n_ours, "µs")
        values["pueue status per task"] = (values[theirs][0] * 1000 / n_theirs, "µs")
        comparisons.append(("list --json, per task listed (µs)", "vapora list per task", "pueue status per task", False, None))
for c, (median, low, high, n) in round_ratios.items():
    print(f"add c={c} / LPUSH c={c}, per round: median {median:.2f}×, range {low:.2f}–{high:.2f}× over {n} rounds")
print()
print("| comparison | vapora | peer | vapora is | target |")
print("|---|---|---|---|---|")
fmt = lambda v: f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"
for what, ours, theirs, higher_better, target in comparisons:
    a, b = get(ours), get(theirs)
    if a is None or b is None:
        continue
    ratio = a / b if higher_better else b / a
    goal = f"≥ {target}×" if target else "-"
    verdict = "" if not target else (" ✓" if ratio >= target else " ✗")
    print(f"| {what} | {fmt(a)} | {fmt(b)} | {ratio:.2f}× {'better' if ratio >= 1 else 'worse'} | {goal}{verdict} |")
PY
