#!/usr/bin/env bash
# 9. Web API latency with 50 apps (issue 8): `rpm2 web <port>` on 127.0.0.1, then GET / and
#    GET /metrics, WEB_N times each (wall time of one request on a fresh connection). PM2 7 has no
#    web API (removed in 4.0), so its rows are n/a.
# Params: WEB_APPS (50), WEB_N (20)
source "$(dirname "$0")/lib.sh"
bench_init
WEB_APPS=${WEB_APPS:-50}
WEB_N=${WEB_N:-20}

for t in $BENCH_TOOLS; do
  if [ "$t" != rpm2 ]; then
    na web_root_ms "$t" "pm2 7 has no web API (removed in 4.0)"; na web_metrics_ms "$t" "pm2 7 has no web API"; continue
  fi
  if ! { fresh_daemon "$t" && start_apps "$t" web "$WEB_APPS" idle.js && wait_online "$t" web "$WEB_APPS" 120; }; then
    na web_root_ms "$t" "$WAIT_REASON"; na web_metrics_ms "$t" "$WAIT_REASON"; continue
  fi
  record_app_pids "$t"
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  if ! pm "$t" web "$port" >/dev/null 2>&1; then
    na web_root_ms "$t" "rpm2 web failed: $(last_error "$t")"; na web_metrics_ms "$t" "rpm2 web failed"; continue
  fi
  record_app_pids "$t"
  read -r root metrics < <("$PY" - "$port" "$WEB_N" <<'PYEOF'
import sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
def t(path):
    out = []
    for _ in range(n):
        t0 = time.monotonic_ns()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            r.read()
        out.append((time.monotonic_ns() - t0) / 1e6)
        time.sleep(0.05)
    return " ".join(f"{x:.3f}" for x in out)
for _ in range(50):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read(); break
    except Exception:
        time.sleep(0.1)
print(t("/").replace(" ", ","), t("/metrics").replace(" ", ","))
PYEOF
)
  if [ -n "$root" ]; then
    emit web_root_ms "$t" --note "$WEB_APPS apps" ${root//,/ }
    emit web_metrics_ms "$t" --note "$WEB_APPS apps" ${metrics//,/ }
  else
    na web_root_ms "$t" "no answer from the web API"; na web_metrics_ms "$t" "no answer from the web API"
  fi
  pm "$t" delete all
done
exit 0
