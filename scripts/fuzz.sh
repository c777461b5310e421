#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for the given number of seconds each (default 60), starting
# from the seeds in fuzz/corpus/<target>/. Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly
# toolchain; without them it says so and exits 0 (so CI can call it unconditionally).
# A crash leaves its input in fuzz/artifacts/<target>/ and makes the script exit non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz): skipped"
  exit 0
fi
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain (rustup toolchain install nightly): skipped"
  exit 0
fi
targets=$(cargo +nightly fuzz list --fuzz-dir fuzz)
cargo +nightly fuzz build -O --fuzz-dir fuzz || exit 1
failed=0
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  # The seeds are read-only inputs; new finds go to a scratch corpus that stays out of git.
  work="fuzz/corpus/$t"
  echo "fuzz: $t for ${secs}s"
  if ! cargo +nightly fuzz run -O --fuzz-dir fuzz "$t" "$work" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 2>"fuzz/$t.log"; then
    echo "fuzz: $t FAILED (see fuzz/$t.log and fuzz/artifacts/$t/)"
    tail -n 30 "fuzz/$t.log"
    failed=1
  else
    grep -E '^stat::number_of_executed_units|^Done' "fuzz/$t.log" | sed "s/^/fuzz: $t: /"
  fi
done
exit $failed
