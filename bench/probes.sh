#!/usr/bin/env bash
# 11. Daemon CPU of health probes (issue 22): PROBE_APPS (100) light apps (`sleep`, interpreter
#     none) each with an http_get liveness probe (GET /healthz on one shared node server) and a
#     tcp_socket readiness probe, both every PROBE_PERIOD_S (1) second: 2 x PROBE_APPS checks per
#     period. After PROBE_SETTLE_S (5) with every app ready, utime+stime of the daemon over PROBE_S
#     (30) seconds, reported per second of wall time. rpm2 only: pm2 7 has no probes.
# Params: PROBE_APPS (100), PROBE_PERIOD_S (1), PROBE_S (30), PROBE_SETTLE_S (5)
source "$(dirname "$0")/lib.sh"
bench_init
PROBE_APPS=${PROBE_APPS:-100}
PROBE_PERIOD_S=${PROBE_PERIOD_S:-1}
PROBE_S=${PROBE_S:-30}
PROBE_SETTLE_S=${PROBE_SETTLE_S:-5}
METRIC=probes_cpu_ms_per_s

for t in $BENCH_TOOLS; do
  [ "$t" = rpm2 ] || { na "$METRIC" "$t" "pm2 7 has no health probes"; continue; }
  dir=$(apps_of "$t")
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  eco=$dir/probes.eco.json
  "$PY" - "$eco" "$dir/probe-target.js" "$port" "$PROBE_APPS" "$PROBE_PERIOD_S" <<'PYEOF'
import json, sys
eco, target, port, n, period = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
apps = [{'name': 'probe-target', 'script': target, 'env': {'PORT': str(port)}}]
for i in range(1, n + 1):
    apps.append({'name': 'probed%d' % i, 'script': 'sleep', 'args': ['100000'], 'interpreter': 'none',
                 'liveness_probe': {'http_get': {'port': port, 'path': '/healthz'}, 'period_seconds': period},
                 'readiness_probe': {'tcp_socket': {'port': port}, 'period_seconds': period}})
json.dump({'apps': apps}, open(eco, 'w'))
PYEOF
  if ! fresh_daemon "$t" || ! (cd "$dir" && pm "$t" start "$eco"); then
    na "$METRIC" "$t" "${WAIT_REASON:-start of $PROBE_APPS probed apps failed: $(last_error "$t")}"; continue
  fi
  record_app_pids "$t"
  if ! wait_online "$t" probed "$PROBE_APPS" 90; then na "$METRIC" "$t" "$WAIT_REASON"; continue; fi
  sleep "$PROBE_SETTLE_S"
  P=$(daemon_pid "$t") && T0=$(bt ticks "$P")
  w0=$(bt now-ms)
  sleep "$PROBE_S"
  w1=$(bt now-ms)
  if [ -z "${T0:-}" ] || ! t1=$(bt ticks "$P"); then na "$METRIC" "$t" "daemon pid gone during the window"; continue; fi
  ms=$(awk -v a="$T0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.0f", (b-a)*1000/hz}')
  per_s=$(awk -v ms="$ms" -v w0="$w0" -v w1="$w1" 'BEGIN{printf "%.2f", ms/((w1-w0)/1000)}')
  restarts=$(jlist "$t" | "$PY" -c 'import json,sys; print(sum(p["pm2_env"]["restart_time"] for p in json.load(sys.stdin)))')
  log "$t: daemon $P: ${ms} ms CPU over $(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.1f", (b-a)/1000}') s with $PROBE_APPS apps x 2 probes every ${PROBE_PERIOD_S}s = ${per_s} ms/s; restarts: $restarts"
  emit "$METRIC" "$t" --note "$PROBE_APPS apps, http liveness + tcp readiness every ${PROBE_PERIOD_S}s, ${PROBE_S}s window, tick $((1000 / CLK_TCK)) ms, $restarts restarts" "$per_s"
  pm "$t" delete all
done
exit 0
