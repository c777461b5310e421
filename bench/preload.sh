#!/usr/bin/env bash
# 10. What rpm2's metrics preload costs an app (issue 22): start-up time (process start -> the app's
#     first line, as performance.now() reads it there), resident memory, CPU and wake-ups of an idle
#     app; with the preload (rpm2), without it (`rpm2 start --no-pmx`), and under pm2 (with its
#     @pm2/io agent, for reference). Per variant: a fresh daemon, PRELOAD_APPS apps of
#     apps/bootmark.js started one after the other (the next once the last logged its first line);
#     their first lines give the start-up times, then
#     after PRELOAD_SETTLE_S seconds their RSS, then their CPU and context switches over
#     PRELOAD_IDLE_S seconds (per app). The variants alternate order each repetition.
# Params: PRELOAD_APPS (10), PRELOAD_SETTLE_S (3), PRELOAD_IDLE_S (20), PRELOAD_REPS (2)
source "$(dirname "$0")/lib.sh"
bench_init
N=${PRELOAD_APPS:-10}
SETTLE=${PRELOAD_SETTLE_S:-3}
IDLE=${PRELOAD_IDLE_S:-20}
REPS=${PRELOAD_REPS:-2}

declare -A BOOT RSS CPU WAKE BAD
VARIANTS=
for t in $BENCH_TOOLS; do
  VARIANTS="$VARIANTS $t"
  [ "$t" = rpm2 ] && VARIANTS="$VARIANTS rpm2-nopmx"
done
for v in $VARIANTS; do BOOT[$v]=; RSS[$v]=; CPU[$v]=; WAKE[$v]=; BAD[$v]=; done

# first_lines TOOL K: the `boot <ms>` figures of apps 1..K's out logs, once all K are there (or after
# 30 s)
first_lines() {
  local tool=$1 k=$2 i f v out deadline
  deadline=$(( $(date +%s) + 30 ))
  while :; do
    out=
    for i in $(seq 1 "$k"); do
      f=$(home_of "$tool")/logs/boot$i-out.log
      v=$(sed -n 's/^.*boot \([0-9.]*\)$/\1/p' "$f" 2>/dev/null | head -1)
      [ -n "$v" ] && out="$out $v"
    done
    if [ "$(wc -w <<<"$out")" -ge "$k" ] || [ "$(date +%s)" -ge "$deadline" ]; then echo "$out"; return; fi
    sleep 0.05
  done
}

# measure VARIANT: one repetition
measure() {
  local v=$1 tool=${1%-nopmx} flags=() dir i pids p r0 r1 c0 c1 rss
  [ "$v" != "$tool" ] && flags=(--no-pmx)
  dir=$(apps_of "$tool")
  fresh_daemon "$tool" || { BAD[$v]=$WAIT_REASON; return; }
  # the out logs of the previous variant on this home: their first lines are not this run's
  rm -f "$(home_of "$tool")"/logs/boot*.log
  # one at a time, each once it logged its first line: start-ups do not compete for the CPU
  for i in $(seq 1 "$N"); do
    (cd "$dir" && pm "$tool" start "$dir/bootmark.js" --name "boot$i" "${flags[@]}") ||
      { BAD[$v]="start failed: $(last_error "$tool")"; pm "$tool" delete all; return; }
    first_lines "$tool" "$i" >/dev/null
  done
  wait_online "$tool" boot "$N" 60 || log "$v: $WAIT_REASON"
  record_app_pids "$tool"
  BOOT[$v]="${BOOT[$v]} $(first_lines "$tool" "$N")"
  sleep "$SETTLE"
  pids=$(app_pids "$tool" boot)
  for p in $pids; do
    rss=$(bt rss "$p" 2>/dev/null) && RSS[$v]="${RSS[$v]} $(awk -v k="$rss" 'BEGIN{printf "%.2f", k/1024}')"
  done
  # shellcheck disable=SC2086
  c0=$(bt ticks $pids); r0=0
  for p in $pids; do r0=$(( r0 + $(bt ctxsw "$p" 2>/dev/null || echo 0) )); done
  sleep "$IDLE"
  # shellcheck disable=SC2086
  c1=$(bt ticks $pids); r1=0
  for p in $pids; do r1=$(( r1 + $(bt ctxsw "$p" 2>/dev/null || echo 0) )); done
  local n; n=$(wc -w <<<"$pids")
  if [ "$n" -gt 0 ]; then
    CPU[$v]="${CPU[$v]} $(awk -v a="$c0" -v b="$c1" -v n="$n" -v hz="$CLK_TCK" -v s="$IDLE" 'BEGIN{printf "%.2f", (b-a)*1000/hz/n/s}')"
    WAKE[$v]="${WAKE[$v]} $(awk -v a="$r0" -v b="$r1" -v n="$n" -v s="$IDLE" 'BEGIN{printf "%.1f", (b-a)/n/s}')"
  fi
  pm "$tool" delete all
}

for r in $(seq 1 "$REPS"); do
  order=$VARIANTS
  [ $(( r % 2 )) = 0 ] && order=$(echo "$VARIANTS" | awk '{for (i = NF; i > 0; i--) printf "%s ", $i; print ""}')
  for v in $order; do
    [ -n "${BAD[$v]}" ] && continue
    log "rep $r: $v"
    measure "$v"
  done
done

for v in $VARIANTS; do
  tool=${v%-nopmx}; sfx=; [ "$v" != "$tool" ] && sfx=_nopmx
  if [ -n "${BAD[$v]}" ] && [ -z "${BOOT[$v]// /}" ]; then
    for m in app_boot app_rss app_idle_cpu app_wakeups; do na "$m${sfx}" "$tool" "${BAD[$v]}"; done
    continue
  fi
  note="$N apps x $REPS"
  # shellcheck disable=SC2086
  emit "app_boot${sfx}_ms" "$tool" --note "$note" ${BOOT[$v]}
  # shellcheck disable=SC2086
  emit "app_rss${sfx}_mib" "$tool" --note "$note, after ${SETTLE}s" ${RSS[$v]}
  # shellcheck disable=SC2086
  emit "app_idle_cpu${sfx}_ms" "$tool" --note "CPU ms per app per second, over ${IDLE}s" ${CPU[$v]}
  # shellcheck disable=SC2086
  emit "app_wakeups${sfx}_per_s" "$tool" --note "context switches per app per second, over ${IDLE}s" ${WAKE[$v]}
done
exit 0
