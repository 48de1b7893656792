"""What every section needs: the run's sizes (full and quick), the fixed
event times, the binaries (from the environment or a release build made
here), and Bench, which holds them with the temporary folder."""
import os
import subprocess
import sys
import tempfile

from lib.procs import log

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
EXAMPLE_CONFIG = os.path.join(REPO, "config", "lambdad.example.json")

# Sizes of a full and a quick run. A full run takes a few minutes on a
# 2-core machine; a quick one is a smoke test of every code path.
FULL = dict(
    reps=3,
    partitions=16,                 # devbroker partitions: retention is per partition
    ingest_events=2_000_000,
    fresh_rates=[20_000, 100_000],
    fresh_window_s=6.0,            # one repetition = one window of markers
    fresh_marker_ms=50,            # lambdad: a marker every 50 ms
    fresh_marker_ms_peer=250,      # ClickHouse: its answers lag by seconds
    batch_events=2_000_000,        # archive for the sqlite3 baseline and full recompute
    flat_sizes=[1_000_000, 4_000_000, 16_000_000],
    flat_new_events=50_000,
    query_prefill=1_000_000,       # 24 h of events before the query runs
    query_rate=20_000,             # steady ingestion while querying
    wrk_s=3,
    mem_steps=[500_000, 1_000_000, 2_000_000, 4_000_000],
    query_heavy_s=6.0,             # one repetition = one window of markers while heavy queries run
    query_heavy_clients=2,         # connections asking full-history questions without the answer cache
    query_heavy_wait_s=10,         # how long a marker may take before it counts as never seen
    scale_events=50_000_000,       # the scale section's archive ...
    scale_days=365,                # ... spread evenly over this many days
    scale_requests=100,            # cold requests per question (each system): p99 is not just the max
    soak_minutes=10,               # the soak section (only run when named: --only soak)
    archive_rates=[(100, 60), (1_000, 30), (100_000, 3)],   # archive_size: (events/s, seconds)
)
QUICK = dict(
    reps=1,
    partitions=4,
    ingest_events=50_000,
    fresh_rates=[20_000, 100_000],
    fresh_window_s=1.0,
    fresh_marker_ms=50,
    fresh_marker_ms_peer=250,
    batch_events=20_000,
    flat_sizes=[10_000, 40_000, 160_000],
    flat_new_events=1_000,
    query_prefill=20_000,
    query_rate=20_000,
    wrk_s=1,
    mem_steps=[5_000, 10_000, 20_000],
    query_heavy_s=2.0,
    query_heavy_clients=2,
    query_heavy_wait_s=3,
    scale_events=200_000,
    scale_days=30,
    scale_requests=5,
    soak_minutes=0.5,
    archive_rates=[(100, 3), (1_000, 2), (100_000, 0.5)],
)
EVENT_TIME = 1795428000        # 2026-11-23T10:00:00Z: fixed event times for reproducible runs
DAY = 86400
STEP_MS_DAY = 86               # ~1M events per day of event time


BIN_ENV = {
    "lambdad": ("LAMBDAD", "daemon/lambdad"),
    "devbroker": ("DEVBROKER", "tools/lambdad-devbroker"),
    "gen": ("LAMBDAD_GEN", "tools/lambdad-gen"),
    "archive": ("LAMBDAD_ARCHIVE", "tools/lambdad-archive"),
    "nullconsumer": ("BENCH_NULLCONSUMER", "bench/bench-nullconsumer"),
    "fixedserver": ("BENCH_FIXEDSERVER", "bench/bench-fixedserver"),
    "probe": ("BENCH_PROBE", "bench/bench-probe"),
    "mkarchive": ("BENCH_MKARCHIVE", "bench/bench-mkarchive"),
}


def find_binaries(args):
    """From the environment when every one is set (meson test), else from a
    release build in args.build_dir, made or brought up to date here."""
    if all(os.environ.get(env) for env, _ in BIN_ENV.values()):
        bins = {k: os.environ[env] for k, (env, _) in BIN_ENV.items()}
        build_dir = os.path.dirname(os.path.dirname(bins["lambdad"]))
        return bins, build_dir
    build_dir = os.path.abspath(args.build_dir)
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        log("Setting up a release build in %s ..." % build_dir)
        subprocess.run(["meson", "setup", build_dir, "--buildtype=release"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    targets = [rel for _, rel in BIN_ENV.values()]
    r = subprocess.run(["ninja", "-C", build_dir] + targets, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        raise SystemExit("bench/run: the build failed")
    return {k: os.path.join(build_dir, rel) for k, (_, rel) in BIN_ENV.items()}, build_dir


class Bench:
    """What every benchmark needs: sizes, binaries, the temporary folder."""

    def __init__(self, args, bins, build_dir):
        self.args, self.bin, self.build_dir = args, bins, build_dir
        self.quick = args.quick
        self.S = QUICK if args.quick else FULL
        self.reps = args.reps or self.S["reps"]
        self.scale_events = args.scale_events or self.S["scale_events"]
        self.soak_minutes = args.soak_minutes or self.S["soak_minutes"]
        self.tmp = tempfile.mkdtemp(prefix="lambdad-bench-")
        self.n = 0
        self.ch = None          # the ClickHouse server, when the peer runs
        self.shared = {}        # figures one section hands to another
        self.load_start = os.getloadavg()[0]

    def dir(self, name):
        self.n += 1
        d = os.path.join(self.tmp, "%02d-%s" % (self.n, name))
        os.makedirs(d)
        return d
