#!/usr/bin/env bash
# 3. `start` wall time of one idle app, daemon already running with no other app:
#    `start idle.js --name sN` (timed), wait until online (untimed), `delete sN`
#    (timed, informational). Alternates rpm2 / pm2.
# Params: START_N (10)
source "$(dirname "$0")/lib.sh"
bench_init
START_N=${START_N:-10}

declare -A ST DL BAD
live=
for t in $BENCH_TOOLS; do
  ST[$t]=; DL[$t]=; BAD[$t]=
  if fresh_daemon "$t"; then live="$live $t"; else na start_ms "$t" "$WAIT_REASON"; na delete_ms "$t" "$WAIT_REASON"; fi
done
for i in $(seq 1 "$START_N"); do
  for t in $(tools_for_rep "$i"); do
    case " $live " in *" $t "*) ;; *) continue ;; esac
    [ -n "${BAD[$t]}" ] && continue
    read -r ms rc < <(time_cli "$t" 1 start "$(apps_of "$t")/idle.js" --name "s$i")
    if [ "${rc:-x}" != 0 ]; then   # run it again, untimed, to log why
      (cd "$(apps_of "$t")" && pm "$t" start "$(apps_of "$t")/idle.js" --name "s$i")
      BAD[$t]="'start' exited with rc ${rc:-?}: $(last_error "$t")"; pm "$t" delete "s$i"; continue
    fi
    ST[$t]="${ST[$t]} $ms"
    wait_online "$t" "s$i" 1 20 || log "$t: $WAIT_REASON"
    record_app_pids "$t"
    read -r ms rc < <(time_cli "$t" 1 delete "s$i")
    if [ "${rc:-x}" = 0 ]; then DL[$t]="${DL[$t]} $ms"; else log "$t: delete s$i rc=$rc"; pm "$t" delete "s$i"; fi
  done
done
for t in $live; do
  if [ -n "${BAD[$t]}" ] && [ -z "${ST[$t]// /}" ]; then na start_ms "$t" "${BAD[$t]}"
  else emit start_ms "$t" --note "daemon running, no other app${BAD[$t]:+; stopped early: ${BAD[$t]}}" ${ST[$t]}; fi
  if [ -n "${DL[$t]// /}" ]; then emit delete_ms "$t" ${DL[$t]}; else na delete_ms "$t" "${BAD[$t]:-no sample}"; fi
done
for t in $live; do pm "$t" delete all; done
exit 0
