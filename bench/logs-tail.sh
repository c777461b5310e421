#!/usr/bin/env bash
# 8. `logs <app> --nostream --lines 1000` wall time on a 100 MB out log (issue 5: the tail must not
#    read the whole file). One idle app per tool; its out log is padded to LOGTAIL_MB MiB of lines
#    (written directly to the file the manager reports in jlist), then the command is timed.
# Params: LOGTAIL_MB (100), LOGTAIL_N (5)
source "$(dirname "$0")/lib.sh"
bench_init
LOGTAIL_MB=${LOGTAIL_MB:-100}
LOGTAIL_N=${LOGTAIL_N:-5}

for t in $BENCH_TOOLS; do
  if ! fresh_daemon "$t"; then na logs_tail_ms "$t" "$WAIT_REASON"; continue; fi
  (cd "$(apps_of "$t")" && pm "$t" start "$(apps_of "$t")/idle.js" --name big) >/dev/null 2>&1
  if ! wait_online "$t" big 1 20; then na logs_tail_ms "$t" "$WAIT_REASON"; continue; fi
  record_app_pids "$t"
  out=$(jlist "$t" | "$PY" -c 'import json,sys; l=json.load(sys.stdin); print(next(p["pm2_env"]["pm_out_log_path"] for p in l if p["name"]=="big"))' 2>/dev/null)
  if [ -z "$out" ]; then na logs_tail_ms "$t" "no out log path in jlist"; continue; fi
  "$PY" - "$out" "$LOGTAIL_MB" <<'PYEOF'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
line = ("x" * 90 + "\n").encode()
block = line * 10000
with open(path, "ab") as f:
    written = 0
    i = 0
    while written < mb * 1024 * 1024:
        f.write(block); written += len(block); i += 1
PYEOF
  samples=
  for i in $(seq 1 "$LOGTAIL_N"); do
    read -r ms rc < <(time_cli "$t" 1 logs big --nostream --lines 1000)
    [ "${rc:-x}" = 0 ] && samples="$samples $ms"
  done
  if [ -n "${samples// /}" ]; then emit logs_tail_ms "$t" --note "${LOGTAIL_MB} MiB out log" $samples
  else na logs_tail_ms "$t" "logs exited non-zero: $(last_error "$t")"; fi
  pm "$t" delete all
  : >"$out"
done
exit 0
