#!/usr/bin/env bash
# 1. Daemon RSS: VmRSS of the daemon pid (rpm2: <home>/rpm2d.pid, pm2: <home>/pm2.pid)
#    with no apps (SETTLE_S after the daemon started), then with 10 idle fork-mode
#    apps online (SETTLE_S after the last one came online). Fresh daemons every rep;
#    both tools' daemons run side by side. Any descendant of the daemon that is not
#    an app (a helper process) is reported in the note, not added to the figure.
# Params: RSS_REPS (3), SETTLE_S (3), RSS_APPS (10)
source "$(dirname "$0")/lib.sh"
bench_init
RSS_REPS=${RSS_REPS:-3}
SETTLE_S=${SETTLE_S:-3}
RSS_APPS=${RSS_APPS:-10}

declare -A R0 R10 WHY0 WHY10 HELP
for t in $BENCH_TOOLS; do R0[$t]=; R10[$t]=; WHY0[$t]=; WHY10[$t]=; HELP[$t]=; done

for rep in $(seq 1 "$RSS_REPS"); do
  live=
  for t in $(tools_for_rep "$rep"); do
    if fresh_daemon "$t"; then live="$live $t"; else WHY0[$t]=$WAIT_REASON; WHY10[$t]=$WAIT_REASON; fi
  done
  sleep "$SETTLE_S"
  for t in $live; do
    p=$(daemon_pid "$t") || { WHY0[$t]="daemon died while idle"; continue; }
    kb=$(bt rss "$p") && R0[$t]="${R0[$t]} $(awk -v k="$kb" 'BEGIN{printf "%.2f", k/1024}')"
    log "rep $rep $t: 0 apps: daemon $p VmRSS ${kb} kB"
  done
  up=
  for t in $live; do
    if start_apps "$t" idle "$RSS_APPS" idle.js && wait_online "$t" idle "$RSS_APPS" 60; then up="$up $t"
    else WHY10[$t]=$WAIT_REASON; log "$t: $WAIT_REASON"; fi
    record_app_pids "$t"
  done
  sleep "$SETTLE_S"
  for t in $up; do
    p=$(daemon_pid "$t") || { WHY10[$t]="daemon died with $RSS_APPS apps"; continue; }
    kb=$(bt rss "$p") && R10[$t]="${R10[$t]} $(awk -v k="$kb" 'BEGIN{printf "%.2f", k/1024}')"
    h=$(bt helpers "$p" $(app_pids "$t") | awk '{n++; s+=$2; names=names" "$3} END{if (n) printf "%d helper process(es) (%s) with %.1f MiB not counted", n, names, s/1024}')
    [ -n "$h" ] && HELP[$t]=$h
    log "rep $rep $t: $RSS_APPS apps: daemon $p VmRSS ${kb} kB ${h:+; $h}"
  done
done

for t in $BENCH_TOOLS; do
  if [ -n "${R0[$t]// /}" ]; then emit rss_idle_mib "$t" ${R0[$t]}; else na rss_idle_mib "$t" "${WHY0[$t]:-no sample}"; fi
  if [ -n "${R10[$t]// /}" ]; then emit rss_10apps_mib "$t" ${HELP[$t]:+--note "${HELP[$t]}"} ${R10[$t]}
  else na rss_10apps_mib "$t" "${WHY10[$t]:-no sample}"; fi
done
for t in $BENCH_TOOLS; do daemon_pid "$t" >/dev/null && pm "$t" delete all; done
exit 0
