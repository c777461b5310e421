#!/usr/bin/env bash
# 4. Crash-to-restart latency. apps/crash.js appends "start <pid> <origin> <t>" when
#    it runs and "exit <pid> <t>" just before process.exit(1), LIVE_MS after
#    starting. Latency = the next instance's start line - the previous exit line
#    (both epoch ms from the apps' own clocks). Also reported: exit -> the new
#    node process's performance.timeOrigin (the manager's reaction, without
#    node's own boot). CRASH_REPS fresh apps per tool, CRASHES crashes each
#    (pm2 and rpm2 stop an app after 16 unstable restarts: keep CRASHES <= 15).
# Params: CRASHES (8), CRASH_REPS (2), CRASH_LIVE_MS (100)
source "$(dirname "$0")/lib.sh"
bench_init
CRASHES=${CRASHES:-8}
CRASH_REPS=${CRASH_REPS:-2}
CRASH_LIVE_MS=${CRASH_LIVE_MS:-100}

declare -A LAT ORG BAD
live=
for t in $BENCH_TOOLS; do
  LAT[$t]=; ORG[$t]=; BAD[$t]=
  if fresh_daemon "$t"; then live="$live $t"; else na crash_restart_ms "$t" "$WAIT_REASON"; na crash_restart_origin_ms "$t" "$WAIT_REASON"; fi
done
for rep in $(seq 1 "$CRASH_REPS"); do
  for t in $(tools_for_rep "$rep"); do
    case " $live " in *" $t "*) ;; *) continue ;; esac
    dir=$BENCH_WORK/$t/crash$rep; mkdir -p "$dir"
    sed "s/const LIVE_MS = 100;/const LIVE_MS = $CRASH_LIVE_MS;/" "$BENCH_DIR/apps/crash.js" >"$dir/crash.js"
    marks=$dir/crash-marks.log; : >"$marks"
    if ! (cd "$dir" && pm "$t" start "$dir/crash.js" --name "crash$rep"); then
      BAD[$t]="start crash.js failed: $(last_error "$t")"; continue
    fi
    got=$(bt wait-count "$marks" start $((CRASHES + 1)) 60) || {
      st=$(jlist "$t" | "$PY" -c 'import json,sys; d=sys.stdin.read(); a=json.loads(d[d.find("["):]); print(" ".join("%s:%s restarts=%s" % (x["name"], x["pm2_env"]["status"], x["pm2_env"].get("restart_time")) for x in a))' 2>/dev/null)
      BAD[$t]="only $got starts in 60 s (expected $((CRASHES + 1))); jlist: $st"; log "$t: ${BAD[$t]}"
    }
    pm "$t" delete "crash$rep"
    n=0
    while read -r a b; do
      [ -n "$a" ] || continue
      LAT[$t]="${LAT[$t]} $a"; ORG[$t]="${ORG[$t]} $b"; n=$((n + 1))
    done < <(bt crash-intervals "$marks" | head -n "$CRASHES")
    log "rep $rep $t: $n crash->restart intervals:$(bt crash-intervals "$marks" | head -n "$CRASHES" | awk '{printf " %.1f", $1}') ms"
  done
done
for t in $live; do
  if [ -z "${LAT[$t]// /}" ]; then
    na crash_restart_ms "$t" "${BAD[$t]:-no restart observed}"; na crash_restart_origin_ms "$t" "${BAD[$t]:-no restart observed}"
  else
    emit crash_restart_ms "$t" --note "instances live ${CRASH_LIVE_MS} ms${BAD[$t]:+; ${BAD[$t]}}" ${LAT[$t]}
    emit crash_restart_origin_ms "$t" ${ORG[$t]}
  fi
done
for t in $live; do pm "$t" delete all; done
exit 0
