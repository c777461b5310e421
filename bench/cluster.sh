#!/usr/bin/env bash
# Cluster-mode benchmark (issue 4, "Performance"): rpm2 vs pm2 vs Node's own
# cluster module, side by side in one run, reported as ratios.
#
#   bash bench/cluster.sh          (~6 min on a 2-core box)
#
# The same app (cluster/hello.js: http.createServer((q,s)=>s.end('ok'))) runs
#   rpm2:  rpm2 start hello.js -i N -- PORT   (round-robin, the default)
#   pm2:   pm2  start hello.js -i N -- PORT   (pm2@7 devDependency)
#   node:  node cluster/primary.js PORT N     (cluster module, SCHED_RR, re-forks a dead worker)
# Measured:
#   1. keep-alive and Connection: close req/s and p99 (wrk -t2 -c50, CL_DURATION_S each,
#      CL_ROUNDS rounds; the three run side by side, idle when not loaded, the order rotates
#      every round); falls back to autocannon (npm, into a scratch dir) without wrk.
#   2. primary CPU per new connection: utime+stime delta of rpm2d / the pm2 daemon / the
#      node primary over each Connection: close run, divided by the requests it completed.
#   3. failed requests (refused, reset, timeout, non-200) seen by a steady open-loop client
#      (cluster/steady.js: CL_RATE req/s, a new connection each) during CL_RELOADS reloads,
#      -i 2 and -i 1, rpm2 reload vs pm2 reload (node: no reload command, n/a).
#   4. refused connections while the only worker (-i 1) is SIGKILLed (pid from jlist) and
#      restarted, CL_KILLS times, same steady client.
# Output: a markdown table on stdout and in bench/results/cluster.md, raw numbers in
# bench/results/cluster.json. Logs (every CLI call, both daemons' logs, load-tool outputs)
# in bench/results/cluster-logs/.
#
# Each manager gets its own temporary home (RPM2_HOME / PM2_HOME, mktemp -d); every CLI
# call carries only its own. Traffic: 127.0.0.1 only, free ports >= CL_PORT_BASE outside
# the ephemeral range. On exit (or Ctrl-C): background tools and the node primary are
# stopped by pid, both managers get `delete all` + `kill`, then any pid we saw that is
# still alive and still carries our home or our work dir is killed by pid. Nothing is
# ever killed by name.
#
# Environment (all optional):
#   CL_ROUNDS (3) CL_DURATION_S (10) CL_WARMUP_S (2) CL_THREADS (2) CL_CONNS (50)
#   CL_RATE (200) CL_RELOADS (3) CL_KILLS (3) CL_PRE_S (1) CL_POST_S (1.5)
#   CL_PORT_BASE (18700) CL_CMD_TIMEOUT (60) CL_LOAD_TOOL (auto|wrk|autocannon)
#   CL_KEEP=1 (keep the temporary dirs)  RPM2_CLI, PM2_CLI  BENCH_RESULTS_DIR
#   CL_PIN=0: run ./rpm2d in place (default: a copy, so a rebuild during the run does not
#   mix two builds; skipped when RPM2_CLI is given)
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CLD=$HERE/cluster
PY=${PYTHON:-python3}
cl() { "$PY" "$CLD/cl.py" "$@"; }
log() { echo "# [cluster] $*" >&2; }

ROUNDS=${CL_ROUNDS:-3}
DURATION_S=${CL_DURATION_S:-10}
WARMUP_S=${CL_WARMUP_S:-2}
THREADS=${CL_THREADS:-2}
CONNS=${CL_CONNS:-50}
RATE=${CL_RATE:-200}
RELOADS=${CL_RELOADS:-3}
KILLS=${CL_KILLS:-3}
PRE_S=${CL_PRE_S:-1}
POST_S=${CL_POST_S:-1.5}
PORT_BASE=${CL_PORT_BASE:-18700}
CMD_TIMEOUT=${CL_CMD_TIMEOUT:-60}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$HERE/results}
CLK_TCK=$(getconf CLK_TCK)

for c in "$PY" node timeout; do
  command -v "$c" >/dev/null 2>&1 || { echo "cluster bench: '$c' is required" >&2; exit 1; }
done

# ------------------------------------------------------------------ work dirs, homes
WORK=$(mktemp -d -t rpm2-clbench.XXXXXX)
RPM2_H=$(mktemp -d -t rpm2-clhome.XXXXXX)
PM2_H=$(mktemp -d -t pm2-clhome.XXXXXX)
APPS=$WORK/apps
RAW=$WORK/raw.jsonl
mkdir -p "$APPS" "$WORK/load"
cp "$CLD/hello.js" "$CLD/primary.js" "$CLD/steady.js" "$APPS/"
: >"$RAW"
BG_PIDS=()        # our background tools (wrk, steady clients, node primaries)
SEEN_PIDS=()      # daemons and workers we saw: killed at the end if still ours
NODE_PRIMARIES=()

RPM2_CLI=${RPM2_CLI:-}
if [ -z "$RPM2_CLI" ]; then
  RPM2_CLI=$ROOT/bin/rpm2
  if [ "${CL_PIN:-1}" = 1 ] && [ -x "$ROOT/rpm2d" ]; then
    mkdir -p "$WORK/rpm2-pkg/bin"
    cp "$ROOT/bin/rpm2" "$WORK/rpm2-pkg/bin/rpm2" && cp "$ROOT/rpm2d" "$WORK/rpm2-pkg/rpm2d" &&
      RPM2_CLI=$WORK/rpm2-pkg/bin/rpm2
  fi
fi
PM2_CLI=${PM2_CLI:-$ROOT/node_modules/.bin/pm2}
declare -A MISSING=()
[ -x "$RPM2_CLI" ] && { [ "$RPM2_CLI" != "$ROOT/bin/rpm2" ] || [ -x "$ROOT/rpm2d" ]; } ||
  MISSING[rpm2]="rpm2 not runnable ($RPM2_CLI; npm run build?)"
[ -x "$PM2_CLI" ] || MISSING[pm2]="pm2 not found at $PM2_CLI (npm install)"

cli_of() { case $1 in rpm2) echo "$RPM2_CLI" ;; pm2) echo "$PM2_CLI" ;; esac; }
homevar_of() { case $1 in rpm2) echo RPM2_HOME ;; pm2) echo PM2_HOME ;; esac; }
home_of() { case $1 in rpm2) echo "$RPM2_H" ;; pm2) echo "$PM2_H" ;; esac; }
clilog_of() { echo "$WORK/$1.cli.log"; }
# pm TOOL ARGS...: the tool's CLI, bounded, from the apps dir, output to its cli log
pm() {
  local tool=$1 rc; shift
  echo "\$ $tool $*" >>"$(clilog_of "$tool")"
  (cd "$APPS" && env -u RPM2_HOME -u PM2_HOME "$(homevar_of "$tool")=$(home_of "$tool")" \
    timeout -k 5 "$CMD_TIMEOUT" "$(cli_of "$tool")" "$@" </dev/null >>"$(clilog_of "$tool")" 2>&1)
  rc=$?
  echo "[rc=$rc]" >>"$(clilog_of "$tool")"
  return $rc
}
# pm_jlist TOOL: jlist on stdout (through a file: a daemon spawned by it must not hold a pipe)
pm_jlist() {
  local tool=$1 f=$WORK/$1.jlist.$$
  (cd "$APPS" && env -u RPM2_HOME -u PM2_HOME "$(homevar_of "$tool")=$(home_of "$tool")" \
    timeout -k 5 "$CMD_TIMEOUT" "$(cli_of "$tool")" jlist </dev/null >"$f" 2>>"$(clilog_of "$tool")")
  cat "$f"; rm -f "$f"
}
last_error() {
  tail -n 8 "$(clilog_of "$1")" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | grep -v '^\[rc=\|^\$ \|^\s*$\|[│┌└├]' | tail -1 | cut -c1-160
}
daemon_pid() { # TOOL
  local f
  case $1 in rpm2) f=$RPM2_H/rpm2d.pid ;; pm2) f=$PM2_H/pm2.pid ;; *) return 1 ;; esac
  [ -s "$f" ] || return 1
  local p; p=$(tr -dc '0-9' <"$f")
  [ -n "$p" ] && cl alive "$p" && echo "$p"
}
ours() { cl owns "$1" "RPM2_HOME=$RPM2_H" "PM2_HOME=$PM2_H" "$WORK" "$RPM2_H" "$PM2_H"; }
app_pids() { pm_jlist "$1" | cl jlist-pids "$2" 2>/dev/null; }
online_count() { pm_jlist "$1" | cl jlist-count "$2" 2>/dev/null || echo -1; }
see_pids() { local p; for p in "$@"; do SEEN_PIDS+=("$p"); done; }
# wait_online TOOL NAME N TIMEOUT_S [EXCLUDE_PIDS]: N online, none of them in EXCLUDE
wait_online() {
  local tool=$1 name=$2 n=$3 to=$4 ex=${5:-} end pids c p bad
  end=$(( $(date +%s) + to ))
  while :; do
    pids=$(app_pids "$tool" "$name")
    c=$(echo "$pids" | grep -c '[0-9]')
    bad=0
    for p in $pids; do case " $ex " in *" $p "*) bad=1 ;; esac; done
    if [ "$c" -ge "$n" ] && [ $bad = 0 ]; then see_pids $pids; return 0; fi
    [ "$(date +%s)" -ge "$end" ] && { WAIT_REASON="$c/$n '$name' online after ${to}s (stale pids: $bad)"; return 1; }
    sleep 0.2
  done
}
# node_pids PIDFILE: the node primary's listening workers
node_pids() { cat "$1" 2>/dev/null | grep '[0-9]'; }
wait_node() { # PIDFILE N TIMEOUT_S [EXCLUDE]
  local f=$1 n=$2 to=$3 ex=${4:-} end pids c p bad
  end=$(( $(date +%s) + to ))
  while :; do
    pids=$(node_pids "$f"); c=$(echo "$pids" | grep -c '[0-9]'); bad=0
    for p in $pids; do case " $ex " in *" $p "*) bad=1 ;; esac; done
    if [ "$c" -ge "$n" ] && [ $bad = 0 ]; then see_pids $pids; return 0; fi
    [ "$(date +%s)" -ge "$end" ] && { WAIT_REASON="$c/$n node workers after ${to}s"; return 1; }
    sleep 0.05
  done
}
# The primary runs in a session of its own (setsid), as the managers' daemons do: with the
# kernel's autogroup scheduling on, sharing the session (and so the CPU share) with wrk would
# favour it.
start_node_primary() { # PORT N PIDFILE -> NODE_PID
  local i
  rm -f "$3" "$3.primary"
  if command -v setsid >/dev/null 2>&1; then
    setsid node "$APPS/primary.js" "$1" "$2" "$3" >>"$WORK/node-primary.log" 2>&1 </dev/null &
  else
    node "$APPS/primary.js" "$1" "$2" "$3" >>"$WORK/node-primary.log" 2>&1 </dev/null &
  fi
  NODE_PID=$!
  for i in $(seq 1 100); do [ -s "$3.primary" ] && break; sleep 0.05; done
  [ -s "$3.primary" ] && NODE_PID=$(tr -dc '0-9' <"$3.primary")
  BG_PIDS+=("$NODE_PID"); NODE_PRIMARIES+=("$NODE_PID"); see_pids "$NODE_PID"
}
stop_node_primary() { # PID PIDFILE
  local p=$1 w i
  local workers; workers=$(node_pids "$2"; cl children "$p" 2>/dev/null)
  kill -TERM "$p" 2>/dev/null
  for i in $(seq 1 50); do cl alive "$p" || break; sleep 0.1; done
  cl alive "$p" && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  for w in $workers; do ours "$w" && kill -KILL "$w" 2>/dev/null; done
  return 0
}

stop_daemon() { # TOOL
  local tool=$1 p i
  [ -n "${MISSING[$tool]:-}" ] && return 0
  p=$(daemon_pid "$tool") || return 0
  pm "$tool" delete all
  pm "$tool" kill
  for i in $(seq 1 100); do cl alive "$p" || return 0; sleep 0.1; done
  ours "$p" && { log "$tool daemon $p alive 10 s after kill: KILL"; kill -KILL "$p" 2>/dev/null; }
  return 0
}

cleanup() {
  local rc=$? p t
  trap - EXIT INT TERM
  for p in "${BG_PIDS[@]}"; do cl alive "$p" && kill -TERM "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${BG_PIDS[@]}"; do cl alive "$p" && kill -KILL "$p" 2>/dev/null; done
  for t in rpm2 pm2; do p=$(daemon_pid "$t") && see_pids "$p"; stop_daemon "$t"; done
  sleep 0.3
  for p in $(printf '%s\n' "${SEEN_PIDS[@]}" | sort -un); do
    if ours "$p"; then log "cleanup: pid $p still alive: KILL"; kill -KILL "$p" 2>/dev/null; fi
  done
  mkdir -p "$RESULTS_DIR/cluster-logs"
  rm -f "$RESULTS_DIR"/cluster-logs/* 2>/dev/null
  cp "$WORK"/*.cli.log "$WORK/node-primary.log" "$RESULTS_DIR/cluster-logs/" 2>/dev/null
  cp "$RPM2_H/rpm2.log" "$RESULTS_DIR/cluster-logs/rpm2-daemon.log" 2>/dev/null
  cp "$PM2_H/pm2.log" "$RESULTS_DIR/cluster-logs/pm2-daemon.log" 2>/dev/null
  cp "$RAW" "$RESULTS_DIR/cluster.raw.jsonl" 2>/dev/null
  (cd "$WORK/load" && tar czf "$RESULTS_DIR/cluster-logs/load.tgz" . 2>/dev/null)
  if [ "${CL_KEEP:-0}" = 1 ]; then log "kept: $WORK $RPM2_H $PM2_H"
  else rm -rf "$WORK" "$RPM2_H" "$PM2_H"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ load tool
LOAD_TOOL=${CL_LOAD_TOOL:-auto}
AC=
if [ "$LOAD_TOOL" = auto ] || [ "$LOAD_TOOL" = wrk ]; then
  if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "wrk missing: apt-get install -y wrk"
    timeout 180 apt-get install -y -qq wrk >"$WORK/apt.log" 2>&1 ||
      { timeout 180 apt-get update -qq >>"$WORK/apt.log" 2>&1 && timeout 180 apt-get install -y -qq wrk >>"$WORK/apt.log" 2>&1; }
  fi
  command -v wrk >/dev/null 2>&1 && LOAD_TOOL=wrk
fi
if [ "$LOAD_TOOL" != wrk ]; then
  AC=$(command -v autocannon 2>/dev/null || true)
  [ -z "$AC" ] && [ -x /tmp/benchtools/node_modules/.bin/autocannon ] && AC=/tmp/benchtools/node_modules/.bin/autocannon
  if [ -z "$AC" ] && command -v npm >/dev/null 2>&1; then
    log "no wrk: npm install --prefix /tmp/benchtools autocannon"
    timeout 300 npm install --silent --prefix /tmp/benchtools autocannon >"$WORK/npm.log" 2>&1 &&
      AC=/tmp/benchtools/node_modules/.bin/autocannon
  fi
  if [ -n "$AC" ] && [ -x "$AC" ]; then LOAD_TOOL=autocannon; else LOAD_TOOL=none; fi
fi

# load NAME PORT MODE(ka|close) DURATION_S: run the load tool; prints "rps p99_ms requests errors"
load() {
  local f=$WORK/load/$1.txt port=$2 mode=$3 d=$4 hdr=()
  [ "$mode" = close ] && hdr=(-H 'Connection: close')
  if [ "$LOAD_TOOL" = wrk ]; then
    timeout -k 5 $((d + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --latency "${hdr[@]}" "http://127.0.0.1:$port/" >"$f" 2>&1 &
  else
    timeout -k 5 $((d + 30)) "$AC" -c "$CONNS" -d "$d" -j "${hdr[@]}" "http://127.0.0.1:$port/" >"$f" 2>"$f.err" &
  fi
  local lp=$!; BG_PIDS+=("$lp"); wait "$lp"
  if [ "$LOAD_TOOL" = wrk ]; then cl parse-wrk "$f"; else cl parse-ac "$f"; fi
}

# ------------------------------------------------------------------ context
NB0=$(cl node-boot-ms)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
read -r CPU_B0 CPU_T0 < <(cl cpustat)
T0=$(date +%s)
rpm2_ver=$(env -u PM2_HOME RPM2_HOME="$RPM2_H" timeout 20 "$RPM2_CLI" --version 2>/dev/null | tail -1)
pm2_ver=$(grep -m1 '"version"' "$ROOT/node_modules/pm2/package.json" 2>/dev/null | tr -dc '0-9.')
cl ctx "$RAW" machine "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr), node $(node --version), rpm2 ${rpm2_ver:-?}, pm2 ${pm2_ver:-?}, load tool: $LOAD_TOOL -t$THREADS -c$CONNS ${DURATION_S}s x $ROUNDS rounds; steady client $RATE req/s (new connection each)"
cl ctx "$RAW" params "CL_ROUNDS=$ROUNDS CL_DURATION_S=$DURATION_S CL_WARMUP_S=$WARMUP_S CL_THREADS=$THREADS CL_CONNS=$CONNS CL_RATE=$RATE CL_RELOADS=$RELOADS CL_KILLS=$KILLS CL_PRE_S=$PRE_S CL_POST_S=$POST_S"
log "work dir $WORK; RPM2_HOME=$RPM2_H PM2_HOME=$PM2_H; rpm2: $RPM2_CLI ($rpm2_ver) pm2: $PM2_CLI ($pm2_ver)"
log "load average $LOAD0; node -e 0: ${NB0} ms; load tool: $LOAD_TOOL"

read -r P_R P_P P_N Q_R Q_P Q_N < <(cl free-ports "$PORT_BASE" 6) || { log "no free ports from $PORT_BASE"; exit 1; }
declare -A TPORT=([rpm2]=$P_R [pm2]=$P_P [node]=$P_N)
declare -A RPORT=([rpm2]=$Q_R [pm2]=$Q_P [node]=$Q_N)
log "ports: throughput rpm2=$P_R pm2=$P_P node=$P_N; reload/kill rpm2=$Q_R pm2=$Q_P node=$Q_N"

na_all() { # REASON TOOL METRICS...
  local why=$1 tool=$2 m; shift 2
  for m in "$@"; do cl na "$RAW" "$m" "$tool" "$why"; done
}
TPUT_METRICS=(ka_rps ka_p99_ms close_rps close_p99_ms cpu_us_per_conn)
RELOAD_METRICS_2=(reload_i2_failed reload_i2_cmd_ms)
RELOAD_METRICS_1=(reload_i1_failed reload_i1_cmd_ms)
KILL_METRICS=(sigkill_i1_refused sigkill_i1_failed sigkill_i1_back_ms sigkill_i1_max_lat_ms)
for t in rpm2 pm2; do
  if [ -n "${MISSING[$t]:-}" ]; then
    na_all "${MISSING[$t]}" "$t" "${TPUT_METRICS[@]}" "${RELOAD_METRICS_2[@]}" "${RELOAD_METRICS_1[@]}" reload_max_lat_ms "${KILL_METRICS[@]}"
  else
    touch "$(clilog_of "$t")"
  fi
done
na_all "not applicable: the cluster module has no reload command" node "${RELOAD_METRICS_2[@]}" "${RELOAD_METRICS_1[@]}" reload_max_lat_ms
PHASE_LOAD=""
phase_load() { PHASE_LOAD+="$1: $(cut -d' ' -f1 /proc/loadavg); "; }

# ------------------------------------------------------------------ 1+2. throughput, CPU per connection
phase_load "start"
declare -A UP=() DPID=()
if [ "$LOAD_TOOL" = none ]; then
  for t in rpm2 pm2 node; do na_all "no load tool (wrk not installable, autocannon not installable)" "$t" "${TPUT_METRICS[@]}"; done
else
  for t in rpm2 pm2; do
    [ -n "${MISSING[$t]:-}" ] && continue
    if pm "$t" start "$APPS/hello.js" --name cl-tput -i 2 -- "${TPORT[$t]}" && wait_online "$t" cl-tput 2 60 &&
       cl wait-port "${TPORT[$t]}" 30 && DPID[$t]=$(daemon_pid "$t"); then
      UP[$t]=1; see_pids "${DPID[$t]}"
      log "$t: -i 2 up on ${TPORT[$t]}, daemon ${DPID[$t]}, workers $(app_pids "$t" cl-tput | tr '\n' ' ')mode $(pm_jlist "$t" | cl jlist-mode cl-tput)"
    else
      na_all "start -i 2 failed: ${WAIT_REASON:-$(last_error "$t")}" "$t" "${TPUT_METRICS[@]}"
    fi
  done
  start_node_primary "${TPORT[node]}" 2 "$WORK/node-tput.pids"
  if wait_node "$WORK/node-tput.pids" 2 30 && cl wait-port "${TPORT[node]}" 10; then
    UP[node]=1; DPID[node]=$NODE_PID; NODE_TPUT_PID=$NODE_PID
    log "node: cluster primary $NODE_PID, workers $(node_pids "$WORK/node-tput.pids" | tr '\n' ' ')"
  else
    na_all "node primary.js did not come up: ${WAIT_REASON:-}" node "${TPUT_METRICS[@]}"
  fi
  order=()
  for t in rpm2 pm2 node; do [ -n "${UP[$t]:-}" ] && order+=("$t"); done
  # warm-up (JIT, connection pools), not recorded
  for t in "${order[@]}"; do
    for mode in ka close; do load "warm-$t-$mode" "${TPORT[$t]}" "$mode" "$WARMUP_S" >/dev/null; done
  done
  for r in $(seq 1 "$ROUNDS"); do
    # rotate the order each round, so drift and warmth hit all alike
    rot=("${order[@]:$(( (r - 1) % ${#order[@]} ))}" "${order[@]:0:$(( (r - 1) % ${#order[@]} ))}")
    for mode in ka close; do
      for t in "${rot[@]}"; do
        c0=$(cl ticks "${DPID[$t]}" 2>/dev/null || echo NA)
        res=$(load "$t-$mode-r$r" "${TPORT[$t]}" "$mode" "$DURATION_S") || res=
        c1=$(cl ticks "${DPID[$t]}" 2>/dev/null || echo NA)
        if [ -z "$res" ]; then
          cl na "$RAW" "${mode}_rps" "$t" "round $r: load tool output unparsable (see cluster-logs/load.tgz $t-$mode-r$r.txt)"
          continue
        fi
        read -r rps p99 req errs <<<"$res"
        cl emit "$RAW" "${mode}_rps" "$t" "$rps" "{\"round\":$r,\"requests\":$req,\"errors\":$errs}"
        [ "$p99" != NA ] && cl emit "$RAW" "${mode}_p99_ms" "$t" "$p99" "{\"round\":$r}"
        cpu=
        if [ "$mode" = close ] && [ "$c0" != NA ] && [ "$c1" != NA ] && [ "$req" -gt 0 ]; then
          cpu=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN{printf "%.2f", d * 1e6 / hz / n}')
          cl emit "$RAW" cpu_us_per_conn "$t" "$cpu" "{\"round\":$r,\"cpu_ticks\":$((c1 - c0)),\"clk_tck\":$CLK_TCK,\"connections\":$req,\"pid\":${DPID[$t]}}"
        elif [ "$mode" = close ]; then
          cl na "$RAW" cpu_us_per_conn "$t" "round $r: primary pid ${DPID[$t]} gone (ticks $c0 -> $c1)"
        fi
        log "round $r $mode $t: ${rps} req/s p99 ${p99} ms, $req requests, $errs errors${cpu:+, primary CPU $cpu us/conn ($((c1 - c0)) ticks)}"
      done
    done
  done
fi
for t in rpm2 pm2; do [ -n "${UP[$t]:-}" ] && pm "$t" delete cl-tput; done
[ -n "${NODE_TPUT_PID:-}" ] && stop_node_primary "$NODE_TPUT_PID" "$WORK/node-tput.pids"
phase_load "after throughput"

# ------------------------------------------------------------------ steady client
STEADY_PID=
steady_start() { # PORT OUTFILE
  node "$APPS/steady.js" "$1" "$RATE" 5000 300 >"$2" 2>"$2.err" &
  STEADY_PID=$!; BG_PIDS+=("$STEADY_PID")
}
steady_stop() {
  local i
  kill -INT "$STEADY_PID" 2>/dev/null
  for i in $(seq 1 80); do cl alive "$STEADY_PID" || break; sleep 0.1; done
  cl alive "$STEADY_PID" && kill -KILL "$STEADY_PID" 2>/dev/null
  wait "$STEADY_PID" 2>/dev/null
}
jget() { "$PY" -c 'import json,sys
try: d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(*[d.get(k) if d.get(k) is not None else "NA" for k in sys.argv[2:]])
except Exception: print(*["NA"]*(len(sys.argv)-2))' "$@"; }

# ------------------------------------------------------------------ 3. reload under steady load
reload_test() { # TOOL N
  local tool=$1 n=$2 name=cl-rl$2 port=${RPORT[$1]} k before res cmd_ms rc f sent failed refused reset tmo non200 maxlat
  cl wait-closed "$port" 10 || log "port $port still answers before the reload test"
  if ! { pm "$tool" start "$APPS/hello.js" --name "$name" -i "$n" -- "$port" && wait_online "$tool" "$name" "$n" 60 && cl wait-port "$port" 30; }; then
    na_all "start -i $n failed: ${WAIT_REASON:-$(last_error "$tool")}" "$tool" "reload_i${n}_failed" "reload_i${n}_cmd_ms"
    pm "$tool" delete "$name"; return
  fi
  log "$tool reload -i $n: mode $(pm_jlist "$tool" | cl jlist-mode "$name"), port $port"
  sleep 1
  for k in $(seq 1 "$RELOADS"); do
    f=$WORK/load/reload-$tool-i$n-$k.json
    before=$(app_pids "$tool" "$name" | tr '\n' ' ')
    steady_start "$port" "$f"
    sleep "$PRE_S"
    read -r cmd_ms rc < <(CL_CMDLOG=$(clilog_of "$tool") cl time "$CMD_TIMEOUT" -- env -u RPM2_HOME -u PM2_HOME \
      "$(homevar_of "$tool")=$(home_of "$tool")" "$(cli_of "$tool")" reload "$name")
    local replaced=1
    wait_online "$tool" "$name" "$n" 30 "$before" || { replaced=0; log "$tool reload -i $n #$k: ${WAIT_REASON:-}"; }
    sleep "$POST_S"
    steady_stop
    read -r sent failed refused reset tmo non200 maxlat < <(jget "$f" sent failed refused reset timeout non200 lat_max_ms)
    log "$tool reload -i $n #$k: rc=$rc ${cmd_ms} ms, replaced=$replaced; $sent sent, $failed failed (refused $refused, reset $reset, timeout $tmo, non-200 $non200), slowest ${maxlat} ms"
    if [ "$rc" != 0 ] || [ "$failed" = NA ]; then
      na_all "reload #$k: rc=$rc $( [ "$failed" = NA ] && echo 'steady client output unparsable') $(last_error "$tool")" "$tool" "reload_i${n}_failed" "reload_i${n}_cmd_ms"
      break
    fi
    [ $replaced = 0 ] && cl na "$RAW" "reload_i${n}_failed" "$tool" "reload #$k did not replace every worker within 30 s"
    cl emit "$RAW" "reload_i${n}_failed" "$tool" "$failed" "{\"reload\":$k,\"sent\":$sent,\"refused\":$refused,\"reset\":$reset,\"timeout\":$tmo,\"non200\":$non200,\"replaced\":$replaced,\"rate\":$RATE}"
    cl emit "$RAW" "reload_i${n}_cmd_ms" "$tool" "$cmd_ms" "{\"reload\":$k}"
    cl emit "$RAW" reload_max_lat_ms "$tool" "$maxlat" "{\"reload\":$k,\"instances\":$n}"
  done
  pm "$tool" delete "$name"
}
for n in 2 1; do
  for t in rpm2 pm2; do
    [ -n "${MISSING[$t]:-}" ] && continue
    reload_test "$t" "$n"
  done
done
phase_load "after reloads"

# ------------------------------------------------------------------ 4. SIGKILL of the only worker
kill_test() { # TOOL
  local tool=$1 port=${RPORT[$1]} name=cl-kill k pid dp back f sent failed refused reset tmo non200 maxlat pf=$WORK/node-kill.pids
  cl wait-closed "$port" 10 || log "port $port still answers before the SIGKILL test"
  if [ "$tool" = node ]; then
    start_node_primary "$port" 1 "$pf"; dp=$NODE_PID
    wait_node "$pf" 1 30 && cl wait-port "$port" 10 || { na_all "node primary.js -i 1 did not come up" node "${KILL_METRICS[@]}"; stop_node_primary "$dp" "$pf"; return; }
  else
    if ! { pm "$tool" start "$APPS/hello.js" --name "$name" -i 1 -- "$port" && wait_online "$tool" "$name" 1 60 && cl wait-port "$port" 30; }; then
      na_all "start -i 1 failed: ${WAIT_REASON:-$(last_error "$tool")}" "$tool" "${KILL_METRICS[@]}"
      pm "$tool" delete "$name"; return
    fi
    dp=$(daemon_pid "$tool")
    log "$tool SIGKILL -i 1: mode $(pm_jlist "$tool" | cl jlist-mode "$name"), port $port"
  fi
  sleep 1
  for k in $(seq 1 "$KILLS"); do
    f=$WORK/load/kill-$tool-$k.json
    if [ "$tool" = node ]; then pid=$(node_pids "$pf" | head -1); else pid=$(app_pids "$tool" "$name" | head -1); fi
    steady_start "$port" "$f"
    sleep "$PRE_S"
    back=$(cl kill-respawn "$dp" "$pid" "$WORK" 30) || back=NA
    if [ "$tool" = node ]; then wait_node "$pf" 1 30 "$pid"; else wait_online "$tool" "$name" 1 30 "$pid"; fi || log "$tool SIGKILL #$k: ${WAIT_REASON:-}"
    sleep "$POST_S"
    steady_stop
    read -r sent failed refused reset tmo non200 maxlat < <(jget "$f" sent failed refused reset timeout non200 lat_max_ms)
    log "$tool SIGKILL #$k (pid $pid): new worker after ${back} ms; $sent sent, $failed failed (refused $refused, reset $reset, timeout $tmo, non-200 $non200), slowest ${maxlat} ms"
    if [ -z "$pid" ] || [ "$back" = NA ] || [ "$failed" = NA ]; then
      na_all "SIGKILL #$k: pid '${pid}', respawn ${back}, client ${failed}" "$tool" "${KILL_METRICS[@]}"
      break
    fi
    cl emit "$RAW" sigkill_i1_refused "$tool" "$refused" "{\"kill\":$k,\"sent\":$sent,\"reset\":$reset,\"timeout\":$tmo,\"non200\":$non200,\"rate\":$RATE}"
    cl emit "$RAW" sigkill_i1_failed "$tool" "$failed" "{\"kill\":$k}"
    cl emit "$RAW" sigkill_i1_back_ms "$tool" "$back" "{\"kill\":$k,\"what\":\"SIGKILL -> a new worker process exists (5 ms polling of the primary's children)\"}"
    cl emit "$RAW" sigkill_i1_max_lat_ms "$tool" "$maxlat" "{\"kill\":$k}"
    sleep 1   # pm2 counts a crash within min_uptime (1 s) as unstable
  done
  if [ "$tool" = node ]; then stop_node_primary "$dp" "$pf"; else pm "$tool" delete "$name"; fi
}
for t in rpm2 pm2 node; do
  [ -n "${MISSING[$t]:-}" ] && continue
  kill_test "$t"
done
phase_load "end"

# ------------------------------------------------------------------ report
read -r CPU_B1 CPU_T1 < <(cl cpustat)
NB1=$(cl node-boot-ms)
BUSY=$(awk -v b=$((CPU_B1 - CPU_B0)) -v t=$((CPU_T1 - CPU_T0)) 'BEGIN{ if (t > 0) printf "%.0f", 100 * b / t; else print "?" }')
cl ctx "$RAW" load_summary "load average at start $LOAD0 (1/5/15 min), then ${PHASE_LOAD}machine CPU busy over the run ${BUSY} % (this bench's own load included; near 100 % is expected during the load runs); node -e 0 took ${NB0} ms at start and ${NB1} ms at end; run time $(( $(date +%s) - T0 )) s. Other jobs share this machine: compare within one run only."
cl ctx "$RAW" notes "p99 from the load tool's latency distribution. CPU per connection = (utime+stime of the primary over a Connection: close run, $CLK_TCK ticks/s) / requests completed in that run; rpm2: rpm2d, pm2: its God daemon (the cluster primary), node: primary.js. Reload/SIGKILL: steady.js, $RATE req/s open loop, a new connection per request, 5 s timeout, from ${PRE_S} s before the command/kill to ${POST_S} s after every worker is back online (jlist); failed = refused + reset + timeout + non-200. SIGKILL → new worker = kill to a new child process of the primary (5 ms polling), not yet listening. The node primary runs under setsid (its own session, as a daemon), since autogroup scheduling would otherwise share a CPU slot with wrk."
mkdir -p "$RESULTS_DIR"
cl report "$RAW" "$RESULTS_DIR/cluster.md" "$RESULTS_DIR/cluster.json"
