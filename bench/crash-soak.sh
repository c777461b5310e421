#!/usr/bin/env bash
# Crash-loop soak (issue 17): an app that exits at once, restarted with --restart-delay 0
# --max-restarts 100000 for SOAK_SECONDS (default 60). Reports the daemon's RSS, open fds and CPU
# (start, peak, end), the restarts done, and whether the log and the app table agree.
# Standalone: its own temporary RPM2_HOME, removed at the end. Usage: bash bench/crash-soak.sh [seconds]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-${SOAK_SECONDS:-60}}
RPM2=${RPM2_CLI:-$ROOT/bin/rpm2}
TMP=$(mktemp -d)
export RPM2_HOME=$TMP/home NO_COLOR=1
trap '"$RPM2" kill >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
cat >"$TMP/crash.js" <<'JS'
console.log('soak start ' + process.pid);
process.exit(1);
JS
"$RPM2" start "$TMP/crash.js" --name soak --restart-delay 0 --max-restarts 100000 >/dev/null
PID=$(cat "$RPM2_HOME/rpm2d.pid")
TCK=$(getconf CLK_TCK)
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
fds() { ls "/proc/$PID/fd" | wc -l; }
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
sleep 1
rss0=$(rss); fds0=$(fds); t0=$(ticks); rpeak=$rss0; fpeak=$fds0
for _ in $(seq 1 "$SECS"); do
  sleep 1
  r=$(rss); f=$(fds)
  [ "$r" -gt "$rpeak" ] && rpeak=$r
  [ "$f" -gt "$fpeak" ] && fpeak=$f
done
t1=$(ticks)
"$RPM2" stop soak >/dev/null
restarts=$("$RPM2" jlist | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const l=JSON.parse(s);console.log(l.length===1?l[0].pm2_env.restart_time:"entries="+l.length)})')
log=$(ls "$RPM2_HOME"/logs/soak-out*.log 2>/dev/null | head -1)
lines=$(grep -c 'soak start' "$log" || true)
rss1=$(rss); fds1=$(fds)
cpu=$(awk -v a="$t0" -v b="$t1" -v k="$TCK" -v s="$SECS" 'BEGIN {printf "%.2f s (%.1f%% of one core)", (b-a)/k, 100*(b-a)/k/s}')
echo "crash-soak: ${SECS}s, ${restarts} restarts, ${lines} start lines in the log"
echo "crash-soak: daemon RSS ${rss0} kB -> peak ${rpeak} kB -> end ${rss1} kB"
echo "crash-soak: daemon fds ${fds0} -> peak ${fpeak} -> end ${fds1}"
echo "crash-soak: daemon CPU ${cpu}"
