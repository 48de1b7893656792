#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz: clang, -Dfuzz=true) and runs
# each for SECONDS (default 20) from its seed corpus in tests/fuzz/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     all eight targets by default
#
# New inputs the fuzzer finds go to a scratch corpus, build-fuzz/corpus/
# <target>/, kept between runs (so longer runs build on each other) and
# never into the repository. Exits non-zero when any target crashes (an
# ASan or UBSan report, a broken expectation, a timeout of one input over
# FUZZ_TIMEOUT seconds, or more than FUZZ_RSS_MB of memory) and prints
# where the crashing input is and how to replay it. Environment:
#   FUZZ_FORK=N      N fuzzing processes per target (libFuzzer -fork; default 1)
#   FUZZ_TIMEOUT=S   one input may take S seconds (default 10)
#   FUZZ_RSS_MB=M    memory limit of a fuzzing process (default 2048)
#   FUZZ_BUILD=DIR   the build directory (default build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_event fuzz_query fuzz_config fuzz_chunk fuzz_segment fuzz_expr fuzz_csv fuzz_partial)
build=${FUZZ_BUILD:-build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dfuzz=true -Db_lundef=false
fi
ninja -C "$build" fuzz

# A crash must stop with a report, not a core dump of minutes; UBSan's
# reports abort (the build uses -fno-sanitize-recover).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:disable_coredump=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for t in "${targets[@]}"; do
  exe="$build/tests/fuzz/$t"
  seeds="tests/fuzz/$t"
  scratch="$build/corpus/$t"
  crashes="$build/crashes/$t"
  log="$build/fuzz-$t.log"
  [ -x "$exe" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
  mkdir -p "$scratch" "$crashes"
  args=(-max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}"
        -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -artifact_prefix="$crashes/"
        -print_final_stats=1)
  [ "${FUZZ_FORK:-1}" -gt 1 ] && args+=(-fork="$FUZZ_FORK")
  echo "== $t: ${seconds}s from $seeds (log: $log)"
  # the scratch corpus first: libFuzzer adds new inputs to the first directory
  if "$exe" "${args[@]}" "$scratch" "$seeds" >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::new_units_added|DONE|^#[0-9]+.*(DONE|cov:)' "$log" |
      tail -3 | sed 's/^/   /'
  else
    failed+=("$t")
    echo "!! $t failed; the end of its log:"
    tail -40 "$log" | sed 's/^/   /'
    for f in $(grep -o "Test unit written to [^ ]*" "$log" | sed 's/Test unit written to //'); do
      echo "!! crashing input: $f"
      echo "!! replay: $exe $f"
    done
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in ${failed[*]} (inputs under $build/crashes/)" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets ran ${seconds}s each without a crash."
