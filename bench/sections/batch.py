"""3. Batch recompute: a full recompute against the sqlite3 CLI, and
incremental runs over archives of growing size (flatness)."""
import math
import os
import shutil
import subprocess

from lib.bench import DAY, EVENT_TIME, STEP_MS_DAY
from lib.daemon import Devbroker, Lambdad, batch_run, cells_held, gen, gen_finish
from lib.procs import BenchError, NotAvailable, log, mem_kb, run_timed
from lib.stats import fmt, median, ms, ratio

KEY, TITLE = "batch", "3. Batch recompute"


def sqlite_baseline(b, archive, n, d):
    """The archive's events exported with lambdad-archive dump, loaded into a
    plain table in a copy of the archive file, and aggregated by the sqlite3
    CLI like views_by_page."""
    jl = os.path.join(d, "events.jsonl")
    with open(jl, "wb") as f:
        t_dump, _, r = run_timed([b.bin["archive"], "dump", "--stream", "pageviews", archive], stdout=f,
                                 stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise BenchError("lambdad-archive dump failed: %s" % r.stderr.decode()[-300:])
    copy = os.path.join(d, "sqlite-baseline.db")
    shutil.copyfile(archive, copy)
    if os.path.exists(archive + "-wal"):
        shutil.copyfile(archive + "-wal", copy + "-wal")
    # ascii mode: no quoting, 0x1f never occurs in an event, so each line is one value
    imp = "CREATE TABLE raw(e TEXT);\n.mode ascii\n.separator \"\x1f\" \"\\n\"\n.import %s raw\n" % jl
    t_imp, _, r = run_timed(["sqlite3", copy], input=imp.encode(), capture_output=True)
    if r.returncode != 0 or r.stderr:
        raise BenchError("sqlite3 .import failed: %s" % r.stderr.decode()[-300:])
    os.unlink(jl)
    sql = ("SELECT count(*), sum(views), sum(bytes) FROM ("
           "SELECT json_extract(e, '$.ts') / 60 * 60 AS minute, json_extract(e, '$.page') AS page,"
           " json_extract(e, '$.country') AS country, count(*) AS views,"
           " sum(json_extract(e, '$.bytes')) AS bytes, max(json_extract(e, '$.ms')) AS slowest"
           " FROM raw GROUP BY 1, 2, 3);\n")
    times, cpus, out = [], [], None
    for rep in range(b.reps):
        t, cpu, r = run_timed(["sqlite3", copy], input=sql.encode(), capture_output=True)
        if r.returncode != 0:
            raise BenchError("sqlite3 failed: %s" % r.stderr.decode()[-300:])
        out = r.stdout.decode().strip()
        times.append(t)
        cpus.append(cpu)
        log("  sqlite3 json_extract + GROUP BY over %d events: %.2f s (%s events/s)" % (n, t, fmt(n / t)))
    groups, views, _ = out.split("|")
    if int(views) != n:
        raise BenchError("sqlite3 counted %s events, the archive holds %d" % (views, n))
    os.unlink(copy)
    return dict(times=times, cpus=cpus, groups=int(groups), t_dump=t_dump, t_import=t_imp)


def run(b, R):
    S = b.S
    n = S["batch_events"]
    d = b.dir("batch")
    archive = os.path.join(d, "archive.db")
    r = subprocess.run([b.bin["mkarchive"], "--out", archive, "--count", str(n), "--seed", "1",
                        "--start-time", str(EVENT_TIME - EVENT_TIME % DAY), "--step-ms", str(STEP_MS_DAY)],
                       capture_output=True)
    if r.returncode != 0:
        raise BenchError("bench-mkarchive failed: %s" % r.stderr.decode())
    base = sqlite_baseline(b, archive, n, d)
    sq = [n / t for t in base["times"]]
    lines = ["An archive of %s events (bench-mkarchive: lambdad-gen's events written through "
             "archive.h, about 1M events per day of event time, %.1f MB) is the input of both." % (
                 fmt(n), os.path.getsize(archive) / 1e6), "",
             "**Baseline: the sqlite3 CLI.** `lambdad-archive dump` exported the events (%.2f s) and "
             "sqlite3 `.import` loaded them into a plain one-column table in a copy of the archive "
             "file (%.2f s; neither is timed below). Then, timed, the views_by_page aggregate:" % (
                 base["t_dump"], base["t_import"]), "",
             "```sql", "SELECT json_extract(e,'$.ts')/60*60, json_extract(e,'$.page'), json_extract(e,'$.country'),",
             "       count(*), sum(json_extract(e,'$.bytes')), max(json_extract(e,'$.ms'))",
             "FROM raw GROUP BY 1, 2, 3      -- wrapped in a count(*)/sum() so nothing is printed", "```", "",
             "sqlite3: %s s per run = %s events/s (%s groups; the sum of counts equals the archive's events)."
             % (ms(base["times"]), ms(sq), fmt(base["groups"]))]
    db = Devbroker(b, d, S["partitions"])
    daemon = None
    try:
        daemon = Lambdad(b, d, db.boot, archive=archive, batch_interval_s=3600)
        t_ready = daemon.ready()
        lines += ["", "lambdad started on that archive (recovery: %d events replayed into the live "
                  "views) in %.2f s from start to /readyz (%s events/s)." % (n, t_ready, fmt(n / t_ready))]
        s, body = daemon.http.request("POST", "/v1/admin/recompute?view=nope")
        if s in (405,) or (s == 404 and b"no such endpoint" in body):
            raise NotAvailable("batch layer not available in this build (POST /v1/admin/recompute "
                               "answered %d: %s)" % (s, body.decode(errors="replace")[:120]))
        # The first run hands every event from the live tables to the batch
        # views (all three views, all partitions): not what is measured.
        w0, st = batch_run(daemon)
        first = st["batch"]
        times, walls = [], []
        for rep in range(b.reps):
            wall, st = batch_run(daemon, "views_by_page")
            v = st["views"]["views_by_page"]
            if not v["last_full"] or v["last_rows_scanned"] != n:
                raise BenchError("the recompute of views_by_page was not full over %d events: %s" % (n, v))
            times.append(v["last_duration_ms"] / 1000.0)
            walls.append(wall)
            log("  batch: full recompute of views_by_page over %d events: %.3f s (POST to done %.3f s)"
                % (n, times[-1], wall))
    except NotAvailable as e:
        lines += ["", "**lambdad batch recompute: %s.** Its figures and the incremental-run flatness over "
                  "%s rows appear here once the batch layer (issue #3) is in the build." % (
                      e, ", ".join(fmt(x) for x in S["flat_sizes"]))]
        R.row("3 batch", "full recompute events/s", str(e).split(" (")[0], "sqlite3 CLI " + ms(sq), "")
        R.goal("Batch: at least 1.5x the sqlite3 tool's rate", None, "not measurable: " + str(e).split(" (")[0])
        R.goal("Batch: incremental run time flat from 1M to 16M archived rows", None,
               "not measurable: " + str(e).split(" (")[0])
        R.section("3. Batch recompute", lines)
        return
    finally:
        if daemon:
            daemon.stop()
        db.stop()
    rates = [n / t for t in times]
    lines += ["", "**lambdad, full recompute** of views_by_page (`POST /v1/admin/recompute?view=views_by_page` "
              "after a first run had taken over every event, so nothing else is pending): %s s per run "
              "(the view's `last_duration_ms` in /v1/status; from POST to the run's end as seen by "
              "polling: %s s) = **%s events/s, %s the sqlite3 CLI's rate**. The first run, which "
              "recomputed all three views over every partition, took %.2f s (%s rows scanned)." % (
                  ms(times), ms(walls), ms(rates), fmt(ratio(median(rates), median(sq)), "x"),
                  first["last_duration_ms"] / 1000.0, fmt(first["last_rows_scanned"]))]
    R.row("3 batch", "full recompute events/s (views_by_page)", ms(rates), "sqlite3 CLI " + ms(sq),
          fmt(ratio(median(rates), median(sq)), "x"))
    R.goal("Batch: at least 1.5x the sqlite3 tool's rate", ratio(median(rates), median(sq)) >= 1.5,
           "%s vs %s events/s = %s" % (fmt(median(rates)), fmt(median(sq)),
                                      fmt(ratio(median(rates), median(sq)), "x")))
    flat = bench_batch_flat(b, lines)
    meds = [median(t) for t in flat]
    spread = ratio(max(meds), min(meds))
    R.row("3 batch", "incremental run, one day of new events, at %s rows" % " / ".join(
        fmt(x) for x in S["flat_sizes"]), " / ".join(fmt(m, "s") for m in meds),
          "", fmt(spread, "x") + " max/min")
    R.goal("Batch: incremental run time flat from 1M to 16M archived rows", spread <= 1.5,
           " / ".join(fmt(m, "s") for m in meds) + " (slowest/fastest size %s; flat = at most 1.5x)"
           % fmt(spread, "x"))
    R.section("3. Batch recompute", lines)


def bench_batch_flat(b, lines):
    """Incremental runs after new events for one day, over archives of growing size."""
    S = b.S
    k = S["flat_new_events"]
    day0 = EVENT_TIME - EVENT_TIME % DAY
    res = []
    lines += ["", "**Incremental run** after %d new events for one day: the archive's first day, "
              "which holds about a million events at every size (late events; with more, fewer "
              "than 1M in the smallest archives of a quick run). The run is started with "
              "`POST /v1/admin/recompute` (no view: recompute what the pending events touched) "
              "after a first run took over the whole archive; the time is the run's "
              "`batch.last_duration_ms`." % k, "",
              "| archive rows | days | archive | run time | rows scanned | partitions | peak RSS | cells held |",
              "|---|---|---|---|---|---|---|---|"]
    b.shared["mem_batch"] = []
    for size in S["flat_sizes"]:
        d = b.dir("flat-%d" % size)
        archive = os.path.join(d, "archive.db")
        r = subprocess.run([b.bin["mkarchive"], "--out", archive, "--count", str(size), "--seed", "2",
                            "--start-time", str(day0), "--step-ms", str(STEP_MS_DAY)], capture_output=True)
        if r.returncode != 0:
            raise BenchError("bench-mkarchive failed: %s" % r.stderr.decode())
        abytes = os.path.getsize(archive)
        db = Devbroker(b, d, b.S["partitions"])
        daemon = None
        times, scanned, parts = [], [], []
        try:
            daemon = Lambdad(b, d, db.boot, archive=archive, batch_interval_s=3600)
            daemon.ready(900)
            _, st = batch_run(daemon, timeout=900)
            total = size
            for rep in range(b.reps):
                g = gen(b, db.boot, k, seed=100 + rep, start_time=day0 + 3600 * (rep + 1), step_ms=1)
                gen_finish(g)
                total += k
                daemon.wait_archived(total)
                _, st = batch_run(daemon)
                bt = st["batch"]
                times.append(bt["last_duration_ms"] / 1000.0)
                scanned.append(bt["last_rows_scanned"])
                parts.append(st["views"]["views_by_page"]["last_partitions"])
            m = mem_kb(daemon.pid)
            cells = cells_held(st)
            b.shared["mem_batch"].append(dict(events=total, cells=cells, archive_bytes=abytes, hwm_kb=m["VmHWM"],
                                              rss_kb=m["VmRSS"]))
        finally:
            if daemon:
                daemon.stop()
            db.stop()
            shutil.rmtree(d, ignore_errors=True)   # archive, views file, WAL: hundreds of MB
        res.append(times)
        log("  batch: incremental run over %s rows: %s (%s rows scanned)" % (fmt(size), ms(times, "s"),
                                                                             ms(scanned)))
        lines.append("| %s | %d | %.0f MB | %s | %s | %s | %.0f MB | %s |" % (
            fmt(size), math.ceil(size * STEP_MS_DAY / 1000 / DAY), abytes / 1e6, ms(times, "s"), ms(scanned),
            ms(parts), m["VmHWM"] / 1024, fmt(cells)))
    return res
