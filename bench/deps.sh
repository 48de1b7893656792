#!/usr/bin/env bash
# Installs what bench/run needs beyond scripts/deps.sh (which it runs first):
# the peer of benchmark 5, Debian's ClickHouse (18.16; large, so it is not
# in the project's own list). Only missing packages are installed; uses sudo
# when not root. The Debian package tries to start a system service; bench/run
# never uses it (it runs its own server on a temporary folder and free ports).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh

PKGS=(clickhouse-server clickhouse-client)

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
