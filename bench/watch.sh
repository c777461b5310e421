#!/usr/bin/env bash
# 7. Watch (issue 6), both with watch_delay 0 (the default):
#    (a) file change -> the new instance's first line. apps/watchmark.js, started with
#        --watch in its own directory, appends "start <pid> <epoch ms>" to a marks file
#        outside that directory as soon as it runs; the script writes a new file in the
#        watched directory (epoch ms taken just before), waits for the next start line,
#        and reports the difference. WATCH_N changes per tool, tools alternating.
#    (b) daemon CPU while WATCH_APPS apps watch one tree of WATCH_FILES files (in
#        WATCH_FILES/100 directories) and nothing changes: WATCH_SETTLE_S to settle
#        (initial scans), then utime+stime of each daemon over the same WATCH_IDLE_S
#        window with no CLI call.
# Params: WATCH_N (8), WATCH_APPS (10), WATCH_FILES (20000), WATCH_SETTLE_S (10), WATCH_IDLE_S (30)
source "$(dirname "$0")/lib.sh"
bench_init
WATCH_N=${WATCH_N:-8}
WATCH_APPS=${WATCH_APPS:-10}
WATCH_FILES=${WATCH_FILES:-20000}
WATCH_SETTLE_S=${WATCH_SETTLE_S:-10}
WATCH_IDLE_S=${WATCH_IDLE_S:-30}

epoch_write() { "$PY" -c 'import sys, time; t = time.time() * 1000; open(sys.argv[1], "w").write("x"); print("%.3f" % t)' "$1"; }
last_start() { awk '$1 == "start" {t = $3} END {print t}' "$1"; }

# (a) change -> first line
declare -A LAT BAD DIR MARKS
live=
for t in $BENCH_TOOLS; do
  LAT[$t]=; BAD[$t]=
  DIR[$t]=$BENCH_WORK/$t/watched; MARKS[$t]=$BENCH_WORK/$t/watch-marks.log
  mkdir -p "${DIR[$t]}"; : >"${MARKS[$t]}"
  if ! fresh_daemon "$t"; then na watch_restart_ms "$t" "$WAIT_REASON"; continue; fi
  if ! (cd "${DIR[$t]}" && WATCH_MARKS=${MARKS[$t]} pm "$t" start "$(apps_of "$t")/watchmark.js" --name wm --watch); then
    na watch_restart_ms "$t" "start --watch failed: $(last_error "$t")"; continue
  fi
  if ! bt wait-count "${MARKS[$t]}" start 1 30 >/dev/null; then na watch_restart_ms "$t" "the app never started"; continue; fi
  live="$live $t"
done
sleep 2 # watchers set up (chokidar's initial scan, rpm2's directory walk)
for i in $(seq 1 "$WATCH_N"); do
  for t in $(tools_for_rep "$i"); do
    case " $live " in *" $t "*) ;; *) continue ;; esac
    [ -z "${BAD[$t]}" ] || continue
    sleep 0.5
    t0=$(epoch_write "${DIR[$t]}/change-$i.txt")
    if ! bt wait-count "${MARKS[$t]}" start $((i + 1)) 30 >/dev/null; then
      BAD[$t]="change $i gave no restart within 30 s"; log "$t: ${BAD[$t]}"; continue
    fi
    ms=$(awk -v a="$t0" -v b="$(last_start "${MARKS[$t]}")" 'BEGIN{printf "%.1f", b - a}')
    LAT[$t]="${LAT[$t]} $ms"
  done
done
for t in $live; do
  log "$t: change -> first line:${LAT[$t]} ms"
  if [ -z "${LAT[$t]// /}" ]; then na watch_restart_ms "$t" "${BAD[$t]:-no restart observed}"
  else emit watch_restart_ms "$t" --note "watch_delay 0${BAD[$t]:+; ${BAD[$t]}}" ${LAT[$t]}; fi
  record_app_pids "$t"
  pm "$t" delete all
done

# (b) idle CPU over a big watched tree
TREE=$BENCH_WORK/tree
"$PY" - "$TREE" "$WATCH_FILES" <<'PYEOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, 'd%d' % (i // 100))
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    open(os.path.join(d, 'f%d.js' % i), 'w').close()
PYEOF
declare -A P T0
live=
for t in $BENCH_TOOLS; do
  ok=1
  if ! fresh_daemon "$t"; then na watch_idle_cpu_ms "$t" "$WAIT_REASON"; continue; fi
  for i in $(seq 1 "$WATCH_APPS"); do
    (cd "$TREE" && pm "$t" start "$(apps_of "$t")/idle.js" --name "wi$i" --watch) || { ok=0; break; }
  done
  if [ $ok = 1 ] && wait_online "$t" wi "$WATCH_APPS" 60; then live="$live $t"
  else na watch_idle_cpu_ms "$t" "${WAIT_REASON:-start --watch failed: $(last_error "$t")}"; fi
  record_app_pids "$t"
done
sleep "$WATCH_SETTLE_S"
for t in $live; do P[$t]=$(daemon_pid "$t") && T0[$t]=$(bt ticks "${P[$t]}"); done
sleep "$WATCH_IDLE_S"
for t in $live; do
  if [ -z "${T0[$t]:-}" ] || ! t1=$(bt ticks "${P[$t]}"); then na watch_idle_cpu_ms "$t" "daemon pid gone during the window"; continue; fi
  ms=$(awk -v a="${T0[$t]}" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.0f", (b-a)*1000/hz}')
  log "$t: daemon ${P[$t]}: ${ms} ms CPU over ${WATCH_IDLE_S} s, $WATCH_APPS apps watching $WATCH_FILES files"
  emit watch_idle_cpu_ms "$t" --note "${WATCH_IDLE_S} s window, $WATCH_APPS apps watching $WATCH_FILES files, tick $((1000 / CLK_TCK)) ms" "$ms"
done
for t in $live; do pm "$t" delete all; done
exit 0
