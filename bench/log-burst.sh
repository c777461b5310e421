#!/usr/bin/env bash
# 5. Log throughput. apps/logburst.js (fork mode) waits for a go file, then writes
#    LOG_LINES lines (~55 bytes) to stdout as fast as the stream accepts them.
#    Once the app is online, the poller samples the daemon's utime+stime, creates
#    the go file and polls the app's out log (path from jlist pm2_env.pm_out_log_path)
#    every 2 ms until it holds LOG_LINES lines. Reported: go -> all lines on disk
#    (monotonic, one process), and the daemon's CPU time over the same span.
#    Afterwards the file is checked: every line present, in order.
#    Reference (no manager): the same app run as `node logburst.js | cat > file`,
#    once per rep: the floor set by the app's own writes, and cat's CPU for them.
#    Rotation is allowed: the poller counts the out log and its rotated siblings
#    (<name>-out*), checks them oldest first, and reports the number of files.
#    A burst that makes no progress for LOG_STALL_S is reported n/a at once.
# Params: LOG_LINES (200000), LOG_REPS (3), LOG_TIMEOUT_S (120), LOG_STALL_S (15),
#         LOG_REF (1: run the reference)
source "$(dirname "$0")/lib.sh"
bench_init
LOG_LINES=${LOG_LINES:-200000}
LOG_REPS=${LOG_REPS:-3}
LOG_TIMEOUT_S=${LOG_TIMEOUT_S:-120}
LOG_REF=${LOG_REF:-1}
LOG_STALL_S=${LOG_STALL_S:-15}
NODE=${NODE:-node}
jget() { "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); print(" ".join(str(r.get(k, "NA")) for k in sys.argv[2:]))' "$@"; }

declare -A MS CPU BAD LOSS SYS ROT
REF_MS=; REF_CPU=; REF_BAD=
live=
for t in $BENCH_TOOLS; do
  MS[$t]=; CPU[$t]=; BAD[$t]=; LOSS[$t]=; SYS[$t]=; ROT[$t]=
  if fresh_daemon "$t"; then live="$live $t"; else na log_burst_ms "$t" "$WAIT_REASON"; na log_burst_cpu_ms "$t" "$WAIT_REASON"; fi
done
for rep in $(seq 1 "$LOG_REPS"); do
  if [ "$LOG_REF" = 1 ]; then
    rdir=$BENCH_WORK/ref; mkdir -p "$rdir"
    sed "s/const LINES = 200000;/const LINES = $LOG_LINES;/" "$BENCH_DIR/apps/logburst.js" >"$rdir/logburst.js"
    r=$(cd "$rdir" && timeout -k 5 $((LOG_TIMEOUT_S + 30)) "$PY" "$BT_PY" ref-burst --script "$rdir/logburst.js" --out "$rdir/out.log" --lines "$LOG_LINES" --node "$NODE" --timeout "$LOG_TIMEOUT_S")
    log "rep $rep reference (node | cat): $r"
    read -r ms cpu < <(jget "${r:-{\}}" ms cpu_ms)
    if [ "$ms" != NA ]; then REF_MS="$REF_MS $ms"; REF_CPU="$REF_CPU $cpu"; else REF_BAD=${r:-"reference run failed"}; fi
    rm -f "$rdir/out.log"
  fi
  for t in $(tools_for_rep "$rep"); do
    case " $live " in *" $t "*) ;; *) continue ;; esac
    [ -n "${BAD[$t]}" ] && continue
    name=burst$rep; dir=$(apps_of "$t"); script=$dir/$name.js
    sed "s/const LINES = 200000;/const LINES = $LOG_LINES;/" "$BENCH_DIR/apps/logburst.js" >"$script"
    rm -f "$script.go" "$script.done"
    if ! (cd "$dir" && pm "$t" start "$script" --name "$name") || ! wait_online "$t" "$name" 1 30; then
      BAD[$t]="start logburst.js failed: ${WAIT_REASON:-$(last_error "$t")}"; pm "$t" delete "$name"; continue
    fi
    record_app_pids "$t"
    out=$(jlist "$t" | bt jlist-field "$name" pm_out_log_path)
    [ -n "$out" ] || out=$(home_of "$t")/logs/$name-out.log
    p=$(daemon_pid "$t") || { BAD[$t]="daemon pid not found"; continue; }
    sleep 0.5
    r=$(bt burst --go "$script.go" --out "$out" --lines "$LOG_LINES" --pid "$p" --timeout "$LOG_TIMEOUT_S" --stall "$LOG_STALL_S")
    read -r ms cpu missing ooo sr sw nf < <(jget "${r:-{\}}" ms cpu_ms missing out_of_order daemon_read_syscalls daemon_write_syscalls files)
    err=$(jget "${r:-{\}}" error)
    log "rep $rep $t: $r"
    if [ "$ms" = NA ]; then BAD[$t]=${err:-"poller failed: $r"}; pm "$t" delete "$name"; continue; fi
    MS[$t]="${MS[$t]} $ms"; CPU[$t]="${CPU[$t]} $cpu"
    [ "$sr" != NA ] && SYS[$t]="${SYS[$t]} $((sr + sw))"
    if [ "${nf:-1}" != NA ] && [ "${nf:-1}" -gt 1 ]; then ROT[$t]="the out log was rotated during the burst ($nf files)"; fi
    if [ "$missing" != 0 ] || [ "$ooo" != 0 ]; then LOSS[$t]="rep $rep: $missing lines missing, $ooo out of order"; log "$t: ${LOSS[$t]}"; fi
    pm "$t" delete "$name"
    rm -f "$out" "$script.go" "${out%.log}"__*
  done
done
for t in $live; do
  if [ -z "${MS[$t]// /}" ]; then
    na log_burst_ms "$t" "${BAD[$t]:-no sample}"; na log_burst_cpu_ms "$t" "${BAD[$t]:-no sample}"
  else
    note="$LOG_LINES lines${ROT[$t]:+; ${ROT[$t]}}${LOSS[$t]:+; LOG CONTENT WRONG: ${LOSS[$t]}}${BAD[$t]:+; ${BAD[$t]}}"
    emit log_burst_ms "$t" --note "$note" ${MS[$t]}
    emit log_burst_cpu_ms "$t" ${CPU[$t]}
    [ -n "${SYS[$t]// /}" ] && emit log_burst_daemon_syscalls "$t" ${SYS[$t]}
  fi
done
if [ "$LOG_REF" = 1 ]; then
  if [ -n "${REF_MS// /}" ]; then
    emit log_burst_ms ref --note "node logburst.js | cat > file (no manager)" $REF_MS
    emit log_burst_cpu_ms ref --note "cat's CPU" $REF_CPU
  else na log_burst_ms ref "$REF_BAD"; fi
fi
for t in $live; do pm "$t" delete all; done
exit 0
