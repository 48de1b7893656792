#!/usr/bin/env bash
# Installs the Debian 12 packages lambdad needs to build, test and run the
# demo, but only those that are missing (so a prepared machine needs no
# network). Uses sudo when not root.
set -euo pipefail

PKGS=(
  build-essential meson ninja-build pkg-config   # the build
  librdkafka-dev libmicrohttpd-dev libjansson-dev libsqlite3-dev libzstd-dev
  libxxhash-dev                                  # XXH3 checksums of archive chunks and segments
  libicu-dev                                     # IANA time zones of query buckets (core/tz.c)
  kcat python3 sqlite3 curl                      # tests and demo
  prometheus openssl                             # promtool and a test certificate (tests/e2e/test_ops_http.py)
  wrk                                            # bench/run's query benchmark
  systemd                                        # systemd-analyze, systemd-sysusers (tests/e2e/test_deploy.py)
  clang libclang-rt-14-dev                       # the fuzzing build: clang 14 and its libFuzzer/ASan/UBSan runtimes (scripts/fuzz.sh)
  "$@"                                           # extra packages a caller needs (bench/deps.sh)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
