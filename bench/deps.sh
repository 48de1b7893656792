#!/usr/bin/env bash
# Installs what bench/run needs beyond scripts/deps.sh (which it runs first):
# the peer of benchmark 5, Debian's ClickHouse (18.16; large, so it is not
# in the project's own list). Only missing packages are installed; uses sudo
# when not root. The Debian package tries to start a system service; bench/run
# never uses it (it runs its own server on a temporary folder and free ports).
set -euo pipefail
cd "$(dirname "$0")/.."
# The same check-and-install as the project's own list, with these added.
./scripts/deps.sh clickhouse-server clickhouse-client
