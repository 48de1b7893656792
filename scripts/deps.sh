#!/usr/bin/env bash
# Installs the Debian 12 packages lambdad needs to build, test and run the
# demo, but only those that are missing (so a prepared machine needs no
# network). Uses sudo when not root.
set -euo pipefail

PKGS=(
  build-essential meson ninja-build pkg-config   # the build
  librdkafka-dev libmicrohttpd-dev libjansson-dev libsqlite3-dev libzstd-dev
  libxxhash-dev                                  # XXH3 checksums of archive chunks and segments
  zlib1g-dev libcurl4-gnutls-dev                 # lambdad import: gzip files; import and export talking to a running daemon
  libicu-dev                                     # IANA time zones of query buckets (core/tz.c)
  kcat python3 sqlite3 curl zstd                 # tests and demo (zstd: test_import)
  prometheus openssl                             # promtool and a test certificate (tests/e2e/test_ops_http.py)
  wrk                                            # bench/run's query benchmark
  systemd                                        # systemd-analyze, systemd-sysusers (tests/e2e/test_deploy.py)
  clang libclang-rt-14-dev                       # the fuzzing build: clang 14 and its libFuzzer/ASan/UBSan runtimes (scripts/fuzz.sh)
  libjs-dygraphs                                 # the web UI's charts, embedded into the binary at build time
  chromium                                       # the web UI's browser tests (tests/browser), headless
  "$@"                                           # extra packages a caller needs (bench/deps.sh)
)

# Node.js drives the browser tests (playwright-core); any installed
# node/npm will do (Debian's or another vendor's), so only a machine with
# none gets Debian's.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The browser tests' npm packages (tests/browser/package-lock.json:
# playwright-core only; it drives Debian's chromium and downloads no
# browser), unless they are there already.
browser_dir="$(dirname "$0")/../tests/browser"
if [ ! -f "$browser_dir/node_modules/playwright-core/package.json" ]; then
  echo "Installing the browser tests' npm packages (npm ci in tests/browser)"
  (cd "$browser_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
