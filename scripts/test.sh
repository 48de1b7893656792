#!/usr/bin/env bash
# Installs what is missing, builds lambdad twice (optimized, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs the whole test
# suite (unit and end-to-end) in both builds; then builds the libFuzzer
# targets with clang and runs each for a short while (scripts/fuzz.sh;
# FUZZ_SECONDS per target, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh

run_suite() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@"
  fi
  ninja -C "$dir"
  meson test -C "$dir" --print-errorlogs --num-processes 2
}

echo "== optimized build"
run_suite build
echo "== sanitizer build (ASan + UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false
echo "== fuzzing (libFuzzer, ${FUZZ_SECONDS:-20}s per target)"
unset ASAN_OPTIONS UBSAN_OPTIONS   # fuzz.sh sets its own
./scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
echo "All tests passed in both builds; the fuzz targets found nothing."
