#!/usr/bin/env bash
# The demo: installs what is missing, builds, then starts lambdad-devbroker,
# lambdad with config/lambdad.example.json, and lambdad-gen producing live
# pageview events; prints the web UI's URL and the API's. Ctrl-C stops everything.
# Environment: DEMO_PORT (HTTP port, default 8080), DEMO_RATE (events/s,
# default 2000), DEMO_DIR (state folder, default a new temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
if [ ! -f build/build.ninja ]; then meson setup build >/dev/null; fi
ninja -C build >/dev/null

PORT=${DEMO_PORT:-8080}
RATE=${DEMO_RATE:-2000}
DIR=${DEMO_DIR:-$(mktemp -d /tmp/lambdad-demo.XXXXXX)}
mkdir -p "$DIR"
pids=()
cleanup() {
  trap - INT TERM EXIT
  set +e   # stop everything, whatever each step answers
  echo
  echo "Stopping the demo..."
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true; done
  echo "State kept in $DIR (archive.db, lambdad.log)."
}
trap cleanup INT TERM EXIT

# Its own session: Ctrl-C must not stop the broker before the daemon,
# which still talks to it while it stops; the trap stops it last.
setsid build/tools/lambdad-devbroker --topic pageviews:4 >"$DIR/devbroker.out" 2>"$DIR/devbroker.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$DIR/devbroker.out" ] && break; sleep 0.05; done
BOOT=$(head -n1 "$DIR/devbroker.out")
[ -n "$BOOT" ] || { echo "devbroker did not start:"; cat "$DIR/devbroker.log"; exit 1; }

sed -E -e "s#\"brokers\": *\"[^\"]*\"#\"brokers\": \"$BOOT\"#" \
       -e "s#\"path\": *\"[^\"]*\"#\"path\": \"$DIR/archive.db\"#" \
       -e "s#\"listen\": *\"[^\"]*\"#\"listen\": \"127.0.0.1:$PORT\"#" \
       config/lambdad.example.json >"$DIR/lambdad.json"
build/daemon/lambdad -c "$DIR/lambdad.json" 2>"$DIR/lambdad.log" &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "lambdad did not become ready:"; cat "$DIR/lambdad.log"; exit 1; }

build/tools/lambdad-gen --brokers "$BOOT" --topic pageviews --count 0 --rate "$RATE" \
  --seed 1 --late-share 0.01 --bad-share 0.005 --quiet 2>"$DIR/gen.log" &
pids+=($!)

U="http://127.0.0.1:$PORT"
cat <<MSG

lambdad demo is running: $RATE events/s of generated pageviews.
  Open the web UI:  $U/
  Query the API at  $U/v1/views   (Grafana: $U/grafana, see README "Grafana")

  curl -s '$U/v1/views'
  curl -s '$U/v1/views/views_by_page/query?granularity=all&group_by=country&order_by=views&limit=5'
  curl -s '$U/v1/views/traffic_by_country/query?group_by=country'
  curl -s '$U/v1/views/latency/query?granularity=minute'
  curl -s '$U/v1/views/views_by_page/values/country?limit=5'
  curl -s '$U/v1/status'

Logs and archive: $DIR. Press Ctrl-C to stop.
MSG
wait "${pids[1]}"
