"""9. Archive bytes per event, before and after compaction (issue #10).

At each event rate, lambdad-gen produces the demo's ~100-byte events at
that rate (event times advancing with it) into lambdad with the demo's
config (commit every 50 ms). The archive is measured with the daemon
stopped (its WAL checkpointed and removed), once as ingestion left it
(the baseline: one small chunk per partition and commit) and once after a
batch run, which compacts every chunk at or below R. The raw payload bytes
per event are the floor a compressor has to beat.
"""
import json
import os
import re
import shutil
import subprocess
import time

from lib.bench import EVENT_TIME
from lib.daemon import Devbroker, Lambdad, batch_run, gen, gen_finish
from lib.procs import BenchError, log
from lib.stats import fmt, ratio

KEY, TITLE = "archive_size", "9. Archive size: bytes per event after compaction"
GOAL_BYTES = 30


def archive_stats(b, db):
    r = subprocess.run([b.bin["archive"], "stats", db], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise BenchError("lambdad-archive stats: %s" % r.stderr.strip()[-300:])
    return json.loads(r.stdout)


def measure(b, db):
    """The archive's totals and its bytes on disk (lambdad is stopped: its
    last connection folded the WAL into the database)."""
    st = archive_stats(b, db)
    size = os.path.getsize(db) + (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)
    return st, size


COMMIT_HIST = "lambdad_archive_commit_duration_seconds_bucket"
WAIT_RATE = 1000    # events/s produced while the commit latencies are measured
WINDOW_S = 3.0      # the baseline window's length (a quick run: 1 s)


def commit_buckets(daemon):
    """{le: cumulative count} of the archive commit duration histogram."""
    out = {}
    for k, v in daemon.metrics().items():
        m = re.match(COMMIT_HIST + r'\{le="([^"]+)"\}$', k)
        if m:
            out[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = v
    return out


def latency(before, after):
    """(commits, p99 bound ms, max bound ms) of the commits between two
    histogram snapshots: bounds are the histogram's bucket edges."""
    les = sorted(after)
    cum = [after[le] - before.get(le, 0) for le in les]
    n = cum[-1] if cum else 0
    if not n:
        return 0, 0.0, 0.0
    p99 = next(le for le, c in zip(les, cum) if c >= 0.99 * n)
    mx = next(le for le, c in zip(les, cum) if c >= n)
    return int(n), p99 * 1000, mx * 1000


def commit_wait(b, d, boot, copy):
    """Ingestion at WAIT_RATE events/s on the uncompacted copy: the speed
    thread's commit latencies during WINDOW_S without compaction, then
    during a batch run that compacts."""
    daemon = Lambdad(b, d, boot, archive=copy, batch_interval_s=3600)
    g = None
    try:
        daemon.ready()
        g = gen(b, boot, 0, rate=WAIT_RATE, seed=2, start_time=EVENT_TIME, step_ms=1)
        time.sleep(0.5 if b.quick else 1.0)   # the generator is running: commits are steady
        h0 = commit_buckets(daemon)
        time.sleep(1.0 if b.quick else WINDOW_S)
        h1 = commit_buckets(daemon)
        batch_run(daemon)
        h2 = commit_buckets(daemon)
        return latency(h0, h1), latency(h1, h2)
    finally:
        if g:
            gen_finish(g, terminate=True)
        daemon.stop()


def one_rate(b, rate, seconds):
    n = max(1, int(rate * seconds))
    d = b.dir("archive-size-%d" % rate)
    db = os.path.join(d, "archive.db")
    broker = Devbroker(b, d, b.S["partitions"])
    daemon = None
    try:
        daemon = Lambdad(b, d, broker.boot, archive=db, batch_interval_s=3600)
        daemon.ready()
        g = gen(b, broker.boot, n, rate=rate, seed=1, start_time=EVENT_TIME,
                step_ms=max(1, 1000 // rate))
        gs = gen_finish(g, timeout=seconds * 3 + 120)
        if gs["delivered"] != n:
            raise BenchError("the generator delivered %d of %d" % (gs["delivered"], n))
        daemon.wait_archived(n)
        daemon.stop()
        daemon = None
        before, size0 = measure(b, db)
        copy_dir = os.path.join(d, "commit-wait")
        os.mkdir(copy_dir)
        copy = os.path.join(copy_dir, "archive.db")
        shutil.copyfile(db, copy)

        daemon = Lambdad(b, d, broker.boot, archive=db, batch_interval_s=3600)
        daemon.ready()
        t0 = time.monotonic()
        _, st = batch_run(daemon)
        run_s = time.monotonic() - t0
        comp = st["archive"]["compaction"]
        daemon.stop()
        daemon = None
        after, size1 = measure(b, db)
        if after["events"] != n or before["events"] != n:
            raise BenchError("archive holds %d then %d events, %d produced"
                             % (before["events"], after["events"], n))
        quiet, busy = commit_wait(b, copy_dir, broker.boot, copy)
        res = dict(rate=rate, events=n, payload=before["payload_bytes"] / n,
                   chunks0=before["chunks"], chunks1=after["chunks"],
                   bpe0=size0 / n, bpe1=size1 / n, run_s=run_s,
                   txn_ms=comp["longest_txn_ms"], mean_txn_ms=comp["mean_txn_ms"],
                   merges=comp["merges"], quiet=quiet, busy=busy)
        log("  archive_size %s events/s: %s events, %s -> %s chunks, %.1f -> %.1f bytes/event "
            "(payload %.1f), merge transactions %.1f ms mean, %.1f ms longest; commits p99/max <= %g/%g ms "
            "while compacting, %g/%g ms before"
            % (fmt(rate), fmt(n), fmt(res["chunks0"]), fmt(res["chunks1"]), res["bpe0"], res["bpe1"],
               res["payload"], res["mean_txn_ms"], res["txn_ms"], busy[1], busy[2], quiet[1], quiet[2]))
        return res
    finally:
        if daemon:
            daemon.stop()
        broker.stop()


def run(b, R):
    rows = [one_rate(b, rate, seconds) for rate, seconds in b.S["archive_rates"]]
    for x in rows:
        R.row("9 archive", "bytes/event at %s events/s" % fmt(x["rate"]), "%.1f" % x["bpe1"],
              "before compaction %.1f" % x["bpe0"], fmt(ratio(x["bpe1"], x["bpe0"]), "x"))
    worst = max(x["bpe1"] for x in rows)
    R.goal("Archive: at most %d bytes per ~100-byte event after compaction, at every rate" % GOAL_BYTES,
           None if b.quick else worst <= GOAL_BYTES,
           "worst %.1f bytes/event (%s)" % (worst, ", ".join("%s/s: %.1f" % (fmt(x["rate"]), x["bpe1"])
                                                          for x in rows)), issue=10)
    lines = ["The demo's config (3 views, batch.partition day, commit every 50 ms, "
             "compression_level 3, compaction_level 9) and events (lambdad-gen --seed 1, about "
             "100 bytes) produced at each rate to a %d-partition devbroker; the archive file "
             "is measured with lambdad stopped (WAL folded in), as ingestion left it and after "
             "one batch run that compacted it (one run per rate: these are sizes, not times)."
             % b.S["partitions"], "",
             "| events/s | events | payload bytes/event | chunks before | bytes/event before | "
             "chunks after | bytes/event after | after/before | batch run + compaction s | "
             "merge transaction ms, mean / longest |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for x in rows:
        lines.append("| %s | %s | %.1f | %s | %.1f | %s | %.1f | %s | %.2f | %.1f / %.1f |" % (
            fmt(x["rate"]), fmt(x["events"]), x["payload"], fmt(x["chunks0"]), x["bpe0"],
            fmt(x["chunks1"]), x["bpe1"], fmt(ratio(x["bpe1"], x["bpe0"]), "x"), x["run_s"],
            x["mean_txn_ms"], x["txn_ms"]))
    lines += ["", "A merge's write transaction is the longest a commit of the speed thread "
              "waits for compaction; decompressing and compressing happen outside it. "
              "Commit latencies measured: lambdad on a copy of the uncompacted archive, "
              "ingesting %s events/s, over %g s without compaction (baseline) and then over "
              "the batch run that compacts; the bounds are the edges of the "
              "`lambdad_archive_commit_duration_seconds` histogram's buckets." % (fmt(WAIT_RATE), WINDOW_S), "",
              "| archive of | commits (baseline) | p99 / max commit ms (baseline) | "
              "commits while compacting | p99 / max commit ms while compacting |",
              "|---|---|---|---|---|"]
    for x in rows:
        q, bz = x["quiet"], x["busy"]
        lines.append("| %s events/s | %d | <= %g / <= %g | %d | <= %g / <= %g |"
                     % (fmt(x["rate"]), q[0], q[1], q[2], bz[0], bz[1], bz[2]))
    R.section(TITLE, lines)
