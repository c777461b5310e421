#!/usr/bin/env bash
# 2. `list` wall time with 10 idle apps online (and `jlist`, informational).
#    Whole process, spawn to exit, monotonic clock; stdout to /dev/null.
#    Runs alternate rpm2 / pm2 so that machine drift hits both alike.
#    Also (informational, rpm2 only): `list` run as <pkg>/rpm2d directly, without
#    the bin/rpm2 shell launcher, to show what the launcher costs; and through npm's global-install
#    layout (symlink -> launcher -> platform package's rpm2d).
# Params: LIST_N (20 timed runs per tool, after 2 warm-up runs), JLIST_N (10), LIST_APPS (10)
source "$(dirname "$0")/lib.sh"
bench_init
LIST_N=${LIST_N:-20}
JLIST_N=${JLIST_N:-$(( (LIST_N + 1) / 2 ))}
LIST_APPS=${LIST_APPS:-10}

live=
for t in $BENCH_TOOLS; do
  if fresh_daemon "$t" && start_apps "$t" idle "$LIST_APPS" idle.js && wait_online "$t" idle "$LIST_APPS" 60; then
    live="$live $t"
  else
    na list_10apps_ms "$t" "$WAIT_REASON"; na jlist_10apps_ms "$t" "$WAIT_REASON"
  fi
  record_app_pids "$t"
done

for cmd in list jlist; do
  n=$LIST_N; [ "$cmd" = jlist ] && n=$JLIST_N
  declare -A S=() BAD=()
  for t in $live; do time_cli "$t" 2 "$cmd" >/dev/null; S[$t]=; BAD[$t]=; done
  for i in $(seq 1 "$n"); do
    for t in $(tools_for_rep "$i"); do
      case " $live " in *" $t "*) ;; *) continue ;; esac
      [ -n "${BAD[$t]}" ] && continue
      read -r ms rc < <(time_cli "$t" 1 "$cmd")
      if [ "${rc:-x}" != 0 ]; then pm "$t" "$cmd"; BAD[$t]="'$cmd' exited with rc $rc: $(last_error "$t")"; continue; fi
      S[$t]="${S[$t]} $ms"
    done
  done
  for t in $live; do
    if [ -n "${BAD[$t]}" ]; then na "${cmd}_10apps_ms" "$t" "${BAD[$t]}"
    else emit "${cmd}_10apps_ms" "$t" --note "$LIST_APPS apps online, n=$n" ${S[$t]}; fi
  done
  unset S BAD
done
# rpm2 without the launcher
RPM2D=$(dirname "$(dirname "$RPM2_CLI")")/rpm2d
case " $live " in
  *" rpm2 "*)
    if [ -x "$RPM2D" ]; then
      ds=$(cd "$(apps_of rpm2)" && tool_env rpm2 "$PY" "$BT_PY" time --n "$LIST_N" --warmup 2 --timeout "$BENCH_CMD_TIMEOUT" -- "$RPM2D" list)
      if awk '$2 != 0 {bad=1} END{exit bad}' <<<"$ds"; then emit list_direct_ms rpm2 $(awk '{print $1}' <<<"$ds")
      else na list_direct_ms rpm2 "'$RPM2D list' failed"; fi
    else na list_direct_ms rpm2 "no rpm2d next to $(dirname "$RPM2_CLI")"; fi ;;
esac
# rpm2 as `npm install -g` lays it out: <prefix>/bin/rpm2 -> the main package's bin/rpm2 launcher,
# which finds rpm2d in the platform package beside it (scoped names, the longer path).
case " $live " in
  *" rpm2 "*)
    if [ -x "$RPM2D" ]; then
      inst=$(mktemp -d)
      mkdir -p "$inst/bin" "$inst/lib/node_modules/@rpm2/rpm2/bin" "$inst/lib/node_modules/@rpm2/rpm2-linux-x64-gnu"
      cp "$(dirname "$RPM2_CLI")/rpm2" "$inst/lib/node_modules/@rpm2/rpm2/bin/rpm2"
      cp "$RPM2D" "$inst/lib/node_modules/@rpm2/rpm2-linux-x64-gnu/rpm2d"
      ln -s ../lib/node_modules/@rpm2/rpm2/bin/rpm2 "$inst/bin/rpm2"
      ds=$(cd "$(apps_of rpm2)" && tool_env rpm2 "$PY" "$BT_PY" time --n "$LIST_N" --warmup 2 --timeout "$BENCH_CMD_TIMEOUT" -- "$inst/bin/rpm2" list)
      if awk '$2 != 0 {bad=1} END{exit bad}' <<<"$ds"; then emit list_installed_ms rpm2 --note "npm -g layout: symlink, sh launcher, platform package" $(awk '{print $1}' <<<"$ds")
      else na list_installed_ms rpm2 "'$inst/bin/rpm2 list' failed"; fi
      rm -rf "$inst"
    else na list_installed_ms rpm2 "no rpm2d next to $(dirname "$RPM2_CLI")"; fi ;;
esac
for t in $live; do pm "$t" delete all; done
exit 0
