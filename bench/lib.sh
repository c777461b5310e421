# shellcheck shell=bash
# Shared helpers for `npm run bench` (rpm2 vs pm2). Sourced, never run.
#
# Every measurement script does:  source lib.sh; bench_init; ...; for tool in $BENCH_TOOLS ...
# When run.sh started the script, bench_init reuses the run's work dir and homes
# (exported); a script run alone (`bash bench/cli-list.sh`) makes its own and
# cleans them up on exit.
#
# Environment (all optional):
#   BENCH_TOOLS        which tools to measure, in order. Default: "rpm2 pm2"
#   RPM2_CLI, PM2_CLI  the CLIs. Default: <root>/bin/rpm2 and <root>/node_modules/.bin/pm2
#   BENCH_CMD_TIMEOUT  seconds allowed for any single CLI call. Default: 60
#   BENCH_KEEP=1       keep the temporary homes and work dir at the end (for debugging)
#   PYTHON             python3 used for the helpers. Default: python3
set -u

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
PY=${PYTHON:-python3}
BT_PY=$BENCH_DIR/tools/bt.py
BENCH_TOOLS=${BENCH_TOOLS:-"rpm2 pm2"}
RPM2_CLI=${RPM2_CLI:-$ROOT/bin/rpm2}
PM2_CLI=${PM2_CLI:-$ROOT/node_modules/.bin/pm2}
BENCH_CMD_TIMEOUT=${BENCH_CMD_TIMEOUT:-60}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
SCRIPT_NAME=$(basename "$0" .sh)
CLK_TCK=$(getconf CLK_TCK)

bt() { "$PY" "$BT_PY" "$@"; }
log() { echo "# [$SCRIPT_NAME] $*" >&2; }

# ------------------------------------------------------------------ per tool
cli_of() { case $1 in rpm2) echo "$RPM2_CLI" ;; pm2) echo "$PM2_CLI" ;; *) return 1 ;; esac; }
homevar_of() { case $1 in rpm2) echo RPM2_HOME ;; pm2) echo PM2_HOME ;; *) return 1 ;; esac; }
home_of() { case $1 in rpm2) echo "$BENCH_RPM2_HOME" ;; pm2) echo "$BENCH_PM2_HOME" ;; *) return 1 ;; esac; }
pidfile_of() { case $1 in rpm2) echo "$BENCH_RPM2_HOME/rpm2d.pid" ;; pm2) echo "$BENCH_PM2_HOME/pm2.pid" ;; esac; }
apps_of() { echo "$BENCH_WORK/$1/apps"; }
clilog_of() { echo "$BENCH_WORK/$1.cli.log"; }
# the other tool's order flips every repetition, so drift hits both alike
tools_for_rep() { # REP
  if [ $(( $1 % 2 )) = 0 ]; then echo "$BENCH_TOOLS" | awk '{for (i = NF; i > 0; i--) printf "%s ", $i; print ""}'
  else echo "$BENCH_TOOLS"; fi
}

# tool_env TOOL CMD...: run CMD with only TOOL's home variable set
tool_env() {
  local tool=$1; shift
  env -u RPM2_HOME -u PM2_HOME "$(homevar_of "$tool")=$(home_of "$tool")" "$@"
}

# pm TOOL ARGS...: run the tool's CLI (bounded by BENCH_CMD_TIMEOUT); output to its cli log
pm() {
  local tool=$1 rc log; shift
  log=$(clilog_of "$tool")
  echo "\$ $tool $*" >>"$log"
  tool_env "$tool" timeout -k 5 "$BENCH_CMD_TIMEOUT" "$(cli_of "$tool")" "$@" </dev/null >>"$log" 2>&1
  rc=$?
  echo "[rc=$rc]" >>"$log"
  LAST_RC=$rc
  return $rc
}
LAST_RC=0
# pm_out TOOL ARGS...: same, stdout passed through (via a file, so a daemon that
# inherits the CLI's stdout can never hold a $(...) capture open)
pm_out() {
  local tool=$1 rc log f; shift
  log=$(clilog_of "$tool"); f=$BENCH_WORK/$tool.out.$$
  echo "\$ $tool $* (stdout captured)" >>"$log"
  tool_env "$tool" timeout -k 5 "$BENCH_CMD_TIMEOUT" "$(cli_of "$tool")" "$@" </dev/null >"$f" 2>>"$log"
  rc=$?
  echo "[rc=$rc]" >>"$log"
  cat "$f"; rm -f "$f"
  return $rc
}
# last_error TOOL: the last non-empty output line of the tool's CLI log (for n/a reasons)
last_error() {
  local m
  m=$(tail -n 20 "$(clilog_of "$1")" 2>/dev/null | sed -n '/^\$ /h; /^\$ /!H; ${x;p}' | grep -v '^\[rc=\|^\$ ' |
      sed 's/\x1b\[[0-9;]*m//g' | grep -v '^\s*$' | tail -1 | cut -c1-160)
  echo "${m:-no output} (rc=$LAST_RC)"
}

# time_cli TOOL N ARGS...: N timed runs of the CLI (from the tool's apps dir); prints "<ms> <rc>" lines
time_cli() {
  local tool=$1 n=$2; shift 2
  (cd "$(apps_of "$tool")" && tool_env "$tool" "$PY" "$BT_PY" time --n "$n" --timeout "$BENCH_CMD_TIMEOUT" -- "$(cli_of "$tool")" "$@")
}

# daemon_pid TOOL: the daemon pid from its pid file, if that process is alive
daemon_pid() {
  local f p
  f=$(pidfile_of "$1")
  [ -s "$f" ] || return 1
  p=$(tr -dc '0-9' <"$f")
  [ -n "$p" ] && bt alive "$p" || return 1
  echo "$p"
}
# owned TOOL PID: PID is one of ours (carries our home variable, or is our daemon by command line)
owned() {
  local tool=$1 pid=$2 sub=
  [ "$tool" = pm2 ] && sub="($(home_of pm2))"
  bt owns "$pid" "$(homevar_of "$tool")=$(home_of "$tool")" "$sub"
}
record_pid() { [ -n "${2:-}" ] && echo "$2" >>"$BENCH_WORK/$1.pids"; }

jlist() { pm_out "$1" jlist; }
# online_count TOOL PREFIX
online_count() { jlist "$1" | bt jlist-count "$2" online 2>/dev/null || echo -1; }
# app_pids TOOL [PREFIX]: one a line
app_pids() { jlist "$1" | bt jlist-pids "${2:-}" 2>/dev/null; }
record_app_pids() { local p; for p in $(app_pids "$1"); do record_pid "$1" "$p"; done; }

# wait_online TOOL PREFIX N TIMEOUT_S
wait_online() {
  local tool=$1 prefix=$2 n=$3 to=$4 c deadline
  deadline=$(( $(date +%s) + to ))
  while :; do
    c=$(online_count "$tool" "$prefix")
    [ "${c:--1}" -ge "$n" ] 2>/dev/null && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then WAIT_REASON="only $c/$n '$prefix*' apps online after ${to}s"; return 1; fi
    sleep 0.1
  done
}

# start_apps TOOL PREFIX COUNT SCRIPT: start SCRIPT as PREFIX1..PREFIXn (fork mode)
start_apps() {
  local tool=$1 prefix=$2 n=$3 script=$4 i dir
  dir=$(apps_of "$tool")
  for i in $(seq 1 "$n"); do
    (cd "$dir" && pm "$tool" start "$dir/$script" --name "$prefix$i") || { WAIT_REASON="start $script --name $prefix$i failed: $(last_error "$tool")"; return 1; }
  done
}

# stop_daemon TOOL: `kill` through the CLI, then make sure the daemon pid is gone
# (TERM, then KILL, by pid, and only if it is ours)
stop_daemon() {
  local tool=$1 p i
  p=$(daemon_pid "$tool") || p=
  [ -n "$p" ] || [ -e "$(home_of "$tool")/rpc.sock" ] || return 0
  pm "$tool" kill
  [ -n "$p" ] || return 0
  for i in $(seq 1 100); do bt alive "$p" || return 0; sleep 0.1; done
  if owned "$tool" "$p"; then
    log "$tool daemon $p still alive 10 s after kill: TERM"
    kill -TERM "$p" 2>/dev/null; sleep 2
    bt alive "$p" && kill -KILL "$p" 2>/dev/null
  fi
  return 0
}

# fresh_daemon TOOL: stop any daemon of ours (no apps kept) and start an empty one
fresh_daemon() {
  local tool=$1 p
  if daemon_pid "$tool" >/dev/null; then pm "$tool" delete all; fi
  stop_daemon "$tool"
  sleep 0.3
  pm "$tool" list || { WAIT_REASON="'list' on a fresh home failed: $(last_error "$tool")"; return 1; }
  p=$(daemon_pid "$tool") || { WAIT_REASON="no live daemon pid in $(pidfile_of "$tool")"; return 1; }
  record_pid "$tool" "$p"
  if [ "$(online_count "$tool" "")" != 0 ]; then log "$tool: fresh daemon still lists apps online"; fi
  return 0
}

# na METRIC TOOL REASON: a measurement could not be made
na() { bt fail "$1" "$2" "$3"; }
# emit METRIC TOOL [--note TEXT] SAMPLES...
emit() { bt emit "$@"; }

# ------------------------------------------------------------------ set-up / clean-up
bench_init() {
  if [ -z "${BENCH_WORK:-}" ]; then
    BENCH_OWNER=1
    BENCH_WORK=$(mktemp -d -t rpm2-bench.XXXXXX)
    BENCH_RPM2_HOME=$(mktemp -d -t rpm2-home.XXXXXX)
    BENCH_PM2_HOME=$(mktemp -d -t pm2-home.XXXXXX)
    BENCH_RAW=${BENCH_RAW:-$BENCH_WORK/raw.jsonl}
    export BENCH_WORK BENCH_RPM2_HOME BENCH_PM2_HOME BENCH_RAW
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    log "work dir $BENCH_WORK; RPM2_HOME=$BENCH_RPM2_HOME PM2_HOME=$BENCH_PM2_HOME"
  else
    BENCH_OWNER=0
  fi
  local t
  for t in $BENCH_TOOLS; do
    mkdir -p "$(apps_of "$t")"
    cp "$BENCH_DIR"/apps/*.js "$(apps_of "$t")/"
    touch "$(clilog_of "$t")" "$BENCH_WORK/$t.pids"
  done
}

# bench_cleanup: stop both daemons (CLI kill, then by pid), end any process we
# saw started that still carries our home variable, remove the temporary dirs
bench_cleanup() {
  local rc=$? t p sub
  trap - EXIT INT TERM
  [ "${BENCH_OWNER:-0}" = 1 ] || exit $rc
  for t in $BENCH_TOOLS; do
    p=$(daemon_pid "$t") && record_pid "$t" "$p"
    stop_daemon "$t"
  done
  sleep 0.5
  for t in $BENCH_TOOLS; do
    sub=; [ "$t" = pm2 ] && sub="($(home_of pm2))"
    for p in $(bt owned-pids "$(homevar_of "$t")=$(home_of "$t")" "$sub" $(sort -un "$BENCH_WORK/$t.pids" 2>/dev/null)); do
      log "cleanup: $t pid $p still alive: TERM"
      kill -TERM "$p" 2>/dev/null; sleep 0.5
      bt alive "$p" && kill -KILL "$p" 2>/dev/null
    done
  done
  if [ -d "$RESULTS_DIR" ]; then
    mkdir -p "$RESULTS_DIR/logs"
    for t in $BENCH_TOOLS; do
      cp "$(clilog_of "$t")" "$RESULTS_DIR/logs/" 2>/dev/null
      cp "$(home_of "$t")/$t.log" "$RESULTS_DIR/logs/$t-daemon.log" 2>/dev/null
    done
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "kept: $BENCH_WORK $BENCH_RPM2_HOME $BENCH_PM2_HOME"
  else
    rm -rf "$BENCH_WORK" "$BENCH_RPM2_HOME" "$BENCH_PM2_HOME"
  fi
  exit $rc
}
