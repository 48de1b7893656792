#!/usr/bin/env bash
# A scale-out demo on one machine (README "Running several instances"):
# lambdad-devbroker with a topic of 6 partitions, three shards of lambdad
# (a: partitions 0-1, b: 2-3, c: 4-5) and a replica of shard a, each
# with the demo's views, and lambdad-gen producing live events. Any
# instance answers for all of them. Ctrl-C stops everything.
# Environment: CLUSTER_PORT (the first of four HTTP ports, default 8081),
# DEMO_RATE (events/s, default 2000), DEMO_DIR (state folder).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
if [ ! -f build/build.ninja ]; then meson setup build >/dev/null; fi
ninja -C build >/dev/null

BASE=${CLUSTER_PORT:-8081}
RATE=${DEMO_RATE:-2000}
DIR=${DEMO_DIR:-$(mktemp -d /tmp/lambdad-cluster.XXXXXX)}
mkdir -p "$DIR"
pids=()
cleanup() {
  trap - INT TERM EXIT
  set +e
  echo
  echo "Stopping the cluster demo..."
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true; done
  echo "State kept in $DIR."
}
trap cleanup INT TERM EXIT

setsid build/tools/lambdad-devbroker --topic pageviews:6 >"$DIR/devbroker.out" 2>"$DIR/devbroker.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$DIR/devbroker.out" ] && break; sleep 0.05; done
BOOT=$(head -n1 "$DIR/devbroker.out")
[ -n "$BOOT" ] || { echo "devbroker did not start:"; cat "$DIR/devbroker.log"; exit 1; }

# One shared secret for the internal route; one config per instance.
head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$DIR/cluster.token"
python3 - "$DIR" "$BOOT" "$BASE" <<'PY'
import json, re, sys
d, boot, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open("config/lambdad.example.json").read()
text = re.sub(r"/\*.*?\*/", "", re.sub(r"^\s*//.*$", "", text, flags=re.M), flags=re.S)
cfg = json.loads(text)
members = [("a", "a", [0, 1]), ("a2", "a", [0, 1]), ("b", "b", [2, 3]), ("c", "c", [4, 5])]
port = {name: base + i for i, (name, _, _) in enumerate(members)}
for name, shard, parts in members:
    c = json.loads(json.dumps(cfg))
    c["kafka"].update(brokers=boot, group_id="lambdad-" + name, partitions={"pageviews": parts})
    c["archive"]["path"] = "%s/%s.db" % (d, name)
    c["http"]["listen"] = "127.0.0.1:%d" % port[name]
    c["cluster"] = {"shard": shard, "token_file": d + "/cluster.token",
                    "peers": [{"url": "http://127.0.0.1:%d" % port[o], "shard": s}
                              for o, s, _ in members if o != name]}
    json.dump(c, open("%s/%s.json" % (d, name), "w"), indent=2)
PY
i=0
for name in a a2 b c; do
  build/daemon/lambdad -c "$DIR/$name.json" 2>"$DIR/$name.log" &
  pids+=($!)
  port=$((BASE + i)); i=$((i + 1))
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "lambdad $name did not become ready:"; cat "$DIR/$name.log"; exit 1; }
done

build/tools/lambdad-gen --brokers "$BOOT" --topic pageviews --count 0 --rate "$RATE" \
  --seed 1 --quiet 2>"$DIR/gen.log" &
pids+=($!)

cat <<MSG

lambdad cluster demo: shard a on :$BASE and its replica on :$((BASE + 1)), shard b on :$((BASE + 2)),
shard c on :$((BASE + 3)); $RATE events/s over 6 partitions. Ask any of them:

  curl -s 'http://127.0.0.1:$((BASE + 2))/v1/views/views_by_page/query?granularity=all&group_by=country&order_by=views&limit=3'
  curl -s 'http://127.0.0.1:$((BASE + 2))/v1/status'      (its "cluster" part: the peers' health)
  Web UI: http://127.0.0.1:$BASE/

Stop shard a's first instance (kill the lambdad of $DIR/a.json) and its replica answers;
stop both and a query names the missing shard, or add partial=true.
Logs, configs and archives: $DIR. Press Ctrl-C to stop.
MSG
wait "${pids[-1]}"   # the generator: until Ctrl-C, whichever instance is stopped
