"""8. Sketch metrics: what a distinct and a quantiles metric cost."""
import os
import sqlite3

from lib.bench import EVENT_TIME
from lib.daemon import Devbroker, Lambdad, batch_run, gen, gen_finish
from lib.procs import cpu_s, log, stop
from lib.stats import fmt, median, ms

KEY, TITLE = "sketches", "8. Sketch metrics"
VIEW = "views_by_page"


def segment_figures(archive):
    """(bytes, rows) of the current segments of VIEW in the views file."""
    db = sqlite3.connect("file:%s-views?mode=ro" % archive, uri=True)
    try:
        return db.execute("SELECT sum(bytes), sum(nrows) FROM segments WHERE view = ? AND current = 1",
                          (VIEW,)).fetchone()
    finally:
        db.close()


def run(b, R):
    S = b.S
    n = S["ingest_events"]
    runs = {False: [], True: []}
    for rep in range(b.reps):
        for sk in (False, True):
            d = b.dir("sketches-%s-%d" % ("with" if sk else "without", rep + 1))
            db = Devbroker(b, d, S["partitions"])
            daemon = g = None
            try:
                daemon = Lambdad(b, d, db.boot, sketches=sk)
                daemon.ready()
                cpu0 = cpu_s(daemon.pid)
                g = gen(b, db.boot, n, seed=1, start_time=EVENT_TIME)
                _, st = daemon.wait_archived(n)
                cpu = cpu_s(daemon.pid) - cpu0
                gen_finish(g)
                g = None
                v = st["views"][VIEW]
                live_rows, live_bytes = v["live_rows"] + v["pending_rows"], v["live_bytes"]
                batch_run(daemon)
                seg_bytes, seg_rows = segment_figures(daemon.archive)
                runs[sk].append(dict(cpu_per_m=cpu / (n / 1e6), cells=live_rows,
                                     bytes_per_cell=live_bytes / max(live_rows, 1),
                                     seg_per_row=(seg_bytes or 0) / max(seg_rows or 0, 1)))
                log("  sketches %-7s rep %d: %.2f CPU s per million events, %d cells, %.0f B per cell, "
                    "%.1f segment bytes per row" % ("with" if sk else "without", rep + 1,
                                                    runs[sk][-1]["cpu_per_m"], live_rows,
                                                    runs[sk][-1]["bytes_per_cell"], runs[sk][-1]["seg_per_row"]))
            finally:
                if daemon:
                    daemon.stop()
                if g:
                    stop(g)
                db.stop()
    wo, wi = runs[False], runs[True]

    def col(rs, k):
        return [r[k] for r in rs]
    R.row("8 sketches", "ingest CPU s per million events, with a distinct and a quantiles metric",
          ms(col(wi, "cpu_per_m")), "without " + ms(col(wo, "cpu_per_m")), "")
    lines = ["%s events (lambdad-gen --seed 1) into the example config, whose %s view (minute, page "
             "and country) gets two more metrics in the second run: users (distinct of user) and "
             "latency (quantiles of ms, accuracy 0.01). CPU is lambdad's from the generator's start "
             "until every event is archived and applied; cells and bytes are the view's live "
             "tables (lambdad's own count, sketches' heap included); segment bytes per row are "
             "the view's current segments after one batch run (every level, compressed). "
             "Median (min–max) over %d runs." % (fmt(n), VIEW, b.reps), "",
             "| | CPU s per million events | live cells | bytes per live cell | segment bytes per row |",
             "|---|---|---|---|---|"]
    for name, rs in (("without sketches", wo), ("with distinct + quantiles", wi)):
        lines.append("| %s | %s | %s | %s | %s |" % (
            name, ms(col(rs, "cpu_per_m")), ms(col(rs, "cells")), ms(col(rs, "bytes_per_cell")),
            ms(col(rs, "seg_per_row"))))
    if wo and wi:
        lines += ["", "Per cell, the two sketches add %.0f bytes in memory and %.1f bytes in segments; "
                  "ingest costs %.2f CPU s more per million events." % (
                      median(col(wi, "bytes_per_cell")) - median(col(wo, "bytes_per_cell")),
                      median(col(wi, "seg_per_row")) - median(col(wo, "seg_per_row")),
                      median(col(wi, "cpu_per_m")) - median(col(wo, "cpu_per_m")))]
    R.section(TITLE, lines)
