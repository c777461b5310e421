#!/usr/bin/env bash
# npm run bench: rpm2 vs pm2 side by side, in one run, reported as ratios.
#
# Each tool gets its own temporary home (RPM2_HOME / PM2_HOME, mktemp -d); both
# daemons are started by the measurement scripts and stopped at the end (CLI
# `kill`, then by pid, only processes carrying our temporary home). No ports.
#
# Output: a markdown table on stdout and in bench/results/latest.md, raw data in
# bench/results/latest.json, CLI and daemon logs in bench/results/logs/.
#
# Environment (see each script's header for its own knobs):
#   BENCH_ONLY="daemon-rss cli-list ..."  run a subset (in that order)
#   BENCH_QUICK=1                         few repetitions (a smoke test, ~2 min)
#   BENCH_PIN=0                           run ./rpm2d in place instead of a pinned copy
#                                         (the copy keeps a rebuild during the run out)
#   BENCH_QUIET_PCT=40                    before each measurement wait (at most BENCH_QUIET_MAX_S,
#                                         default 120) until the machine is less than 40 % busy
#   BENCH_SCRIPT_TIMEOUT (300)            hard bound on each measurement script, seconds
#   plus lib.sh's: BENCH_TOOLS, RPM2_CLI, PM2_CLI, BENCH_CMD_TIMEOUT, BENCH_KEEP
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT" || exit 1

if [ ! -x ./rpm2d ]; then
  echo "bench: ./rpm2d not found in $ROOT: run npm run build first" >&2
  exit 1
fi
for c in python3 node timeout; do
  command -v "$c" >/dev/null 2>&1 || { echo "bench: '$c' is required" >&2; exit 1; }
done

ALL="daemon-rss cli-list cli-start crash-restart log-burst logs-tail idle-cpu watch web-api probes preload"
ONLY=${BENCH_ONLY:-$ALL}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  export RSS_REPS=${RSS_REPS:-1} SETTLE_S=${SETTLE_S:-1} LIST_N=${LIST_N:-5} START_N=${START_N:-3} \
    CRASHES=${CRASHES:-4} CRASH_REPS=${CRASH_REPS:-1} LOG_REPS=${LOG_REPS:-1} IDLE_S=${IDLE_S:-5} \
    IDLE_SETTLE_S=${IDLE_SETTLE_S:-1} WATCH_N=${WATCH_N:-3} WATCH_FILES=${WATCH_FILES:-5000} \
    WATCH_SETTLE_S=${WATCH_SETTLE_S:-3} WATCH_IDLE_S=${WATCH_IDLE_S:-5} PROBE_S=${PROBE_S:-5} \
    PRELOAD_APPS=${PRELOAD_APPS:-3} PRELOAD_REPS=${PRELOAD_REPS:-1} PRELOAD_IDLE_S=${PRELOAD_IDLE_S:-5}
fi
export RSS_REPS=${RSS_REPS:-3} SETTLE_S=${SETTLE_S:-3} LIST_N=${LIST_N:-20} START_N=${START_N:-10} \
  CRASHES=${CRASHES:-8} CRASH_REPS=${CRASH_REPS:-2} CRASH_LIVE_MS=${CRASH_LIVE_MS:-100} \
  LOG_LINES=${LOG_LINES:-200000} LOG_REPS=${LOG_REPS:-3} IDLE_S=${IDLE_S:-60} IDLE_SETTLE_S=${IDLE_SETTLE_S:-5}
SCRIPT_TIMEOUT=${BENCH_SCRIPT_TIMEOUT:-300}

unset BENCH_WORK BENCH_RAW
export BENCH_RESULTS_DIR=${BENCH_RESULTS_DIR:-$HERE/results}
mkdir -p "$BENCH_RESULTS_DIR"
source "$HERE/lib.sh"

# pm2 missing: measure rpm2 alone, pm2 cells say why
declare -A MISSING=()
if [ ! -x "$PM2_CLI" ]; then
  MISSING[pm2]="pm2 not found at $PM2_CLI (npm install)"
  echo "bench: ${MISSING[pm2]}: measuring rpm2 only" >&2
  BENCH_TOOLS=$(echo " $BENCH_TOOLS " | sed 's/ pm2 / /g')
fi
export BENCH_TOOLS

bench_init   # temporary work dir and homes; its EXIT trap stops both daemons
rm -f "$RESULTS_DIR"/logs/*.log 2>/dev/null

# pin the rpm2 build under test: other work may rebuild ./rpm2d while we run
RPM2_SRC=$ROOT/rpm2d
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$RPM2_CLI" = "$ROOT/bin/rpm2" ]; then
  mkdir -p "$BENCH_WORK/rpm2-pkg/bin"
  cp "$ROOT/bin/rpm2" "$BENCH_WORK/rpm2-pkg/bin/rpm2" && cp "$ROOT/rpm2d" "$BENCH_WORK/rpm2-pkg/rpm2d" &&
    RPM2_CLI=$BENCH_WORK/rpm2-pkg/bin/rpm2 && RPM2_SRC=$BENCH_WORK/rpm2-pkg/rpm2d
fi
export RPM2_CLI PM2_CLI

node_boot_ms() { bt time --n 3 -- node -e 0 | sort -n | sed -n 2p | awk '{print $1}'; }
T0=$(date +%s)
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
NB0=$(node_boot_ms)
read -r CPU_B0 CPU_A0 < <(bt cpustat)
echo "# rpm2 vs pm2 bench: work dir $BENCH_WORK" >&2
echo "#   RPM2_HOME=$BENCH_RPM2_HOME  PM2_HOME=$BENCH_PM2_HOME  rpm2: $RPM2_CLI  pm2: $PM2_CLI" >&2
echo "#   load average $LOAD0, node -e 0: ${NB0} ms" >&2

# interrupted: end the running measurement (timeout passes TERM to its process
# group), then exit; the EXIT trap from bench_init stops both daemons
CHILD=
on_signal() {
  trap '' INT TERM
  echo "# interrupted: stopping" >&2
  if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null; fi
  exit 130
}
trap on_signal INT TERM

SCRIPTS_TSV=$BENCH_WORK/scripts.tsv; : >"$SCRIPTS_TSV"; : >"$BENCH_RAW"
for s in $ONLY; do
  [ "$s" = cluster ] && continue
  if [ ! -f "$HERE/$s.sh" ]; then echo "# unknown measurement '$s' (have: $ALL)" >&2; continue; fi
  echo "# ===== $s =====" >&2
  if [ -n "${BENCH_QUIET_PCT:-}" ]; then
    echo "# machine $(bt wait-quiet "$BENCH_QUIET_PCT" "${BENCH_QUIET_MAX_S:-120}")% busy: going on" >&2
  fi
  s0=$(date +%s)
  # in the background + wait, so that Ctrl-C / TERM reach us at once (timeout runs
  # the script in its own process group, which the terminal's signal misses)
  timeout -k 10 "$SCRIPT_TIMEOUT" bash "$HERE/$s.sh" </dev/null &
  CHILD=$!
  wait "$CHILD"
  rc=$?
  CHILD=
  [ $rc = 0 ] || echo "# $s exited with rc=$rc (124 = timed out after ${SCRIPT_TIMEOUT}s)" >&2
  printf '%s\t%s\t%s\n' "$s" "$rc" "$(( $(date +%s) - s0 ))" >>"$SCRIPTS_TSV"
done

# stop the daemons now (the trap does it again, harmlessly), so the report's
# machine figures are not taken with them running
for t in $BENCH_TOOLS; do
  p=$(daemon_pid "$t") && record_pid "$t" "$p"
  daemon_pid "$t" >/dev/null && pm "$t" delete all
  stop_daemon "$t"
done

read -r CPU_B1 CPU_A1 < <(bt cpustat)
BUSY=$(awk -v b0="$CPU_B0" -v a0="$CPU_A0" -v b1="$CPU_B1" -v a1="$CPU_A1" 'BEGIN{ if (a1 > a0) printf "%.0f", (b1-b0)*100/(a1-a0); else print "NA" }')
META=$BENCH_WORK/meta.json
pm2_version=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$ROOT/node_modules/pm2/package.json" 2>/dev/null || echo NA)
rpm2_version=$(tool_env rpm2 "$RPM2_CLI" --version 2>/dev/null | tail -1)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo NA)
[ -n "$(git -C "$ROOT" status --porcelain -- . ':!bench' 2>/dev/null)" ] && commit="$commit+dirty"
missing_json=$(for k in "${!MISSING[@]}"; do printf '%s\t%s\n' "$k" "${MISSING[$k]}"; done)
"$PY" - "$META" "$SCRIPTS_TSV" <<EOF
import json, sys
scripts = {}
for l in open(sys.argv[2]):
    p = l.rstrip('\n').split('\t')
    if len(p) == 3:
        scripts[p[0]] = {'rc': int(p[1]), 'seconds': int(p[2])}
keys = ("RSS_REPS SETTLE_S LIST_N START_N CRASHES CRASH_REPS CRASH_LIVE_MS LOG_LINES LOG_REPS IDLE_S IDLE_SETTLE_S "
        "WATCH_N WATCH_APPS WATCH_FILES WATCH_SETTLE_S WATCH_IDLE_S PRELOAD_APPS PRELOAD_SETTLE_S PRELOAD_IDLE_S "
        "PRELOAD_REPS").split()
import os
missing = dict(l.split('\t', 1) for l in """$missing_json""".splitlines() if '\t' in l)
json.dump({
  'tools': "$BENCH_TOOLS".split(), 'only': "$ONLY".split(), 'missing': missing, 'scripts': scripts,
  'params': {k: os.environ.get(k) for k in keys},
  'env': {'date': "$(date -u +%Y-%m-%dT%H:%M:%SZ)", 'rpm2_version': "$rpm2_version", 'rpm2_commit': "$commit",
          'rpm2_sha256': "$(sha256sum "$RPM2_SRC" 2>/dev/null | cut -c1-16)", 'pm2_version': "$pm2_version",
          'node': "$(node -v)", 'cores': "$(nproc)", 'kernel': "$(uname -sr)", 'clk_tck': $CLK_TCK},
  'context': {'load_start': "$LOAD0", 'load_end': "$(cut -d' ' -f1 /proc/loadavg)", 'node_boot_ms_start': "$NB0",
              'node_boot_ms_end': "$(node_boot_ms)", 'busy_pct': "$BUSY", 'seconds': $(( $(date +%s) - T0 ))},
}, open(sys.argv[1], 'w'), indent=1)
EOF
cp "$BENCH_RAW" "$RESULTS_DIR/latest.raw.jsonl"
echo
"$PY" "$HERE/tools/report.py" "$BENCH_RAW" "$META" "$RESULTS_DIR/latest.md" "$RESULTS_DIR/latest.json"
echo
echo "# written: $RESULTS_DIR/latest.md, $RESULTS_DIR/latest.json (logs in $RESULTS_DIR/logs/)"

# Cluster mode (issue 4): rpm2 vs pm2 vs Node's own cluster module, in its own script and report
# (bench/results/cluster.md). Runs unless BENCH_ONLY names other measurements only; skip it with
# BENCH_CLUSTER=0.
if [ "${BENCH_CLUSTER:-1}" != 0 ] && { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" cluster "* ]]; }; then
  echo "# ===== cluster =====" >&2
  timeout -k 10 "${BENCH_CLUSTER_TIMEOUT:-900}" bash "$HERE/cluster.sh" </dev/null &
  CHILD=$!
  wait "$CHILD" || echo "# cluster exited with rc=$? (124 = timed out)" >&2
  CHILD=
fi
