"""6. Memory: resident memory against the cells the views hold."""
from lib.bench import EVENT_TIME, STEP_MS_DAY
from lib.daemon import Devbroker, Lambdad, cells_held, gen, gen_finish
from lib.procs import mem_kb
from lib.stats import fmt, median, ms

KEY, TITLE = "memory", "6. Memory"


def run(b, R):
    S = b.S
    rows = []
    for rep in range(b.reps):
        d = b.dir("memory-%d" % (rep + 1))
        db = Devbroker(b, d, S["partitions"])
        daemon = None
        try:
            daemon = Lambdad(b, d, db.boot)
            daemon.ready()
            prev = 0

            def sample(events):
                st = daemon.status()
                m = mem_kb(daemon.pid)
                rows.append(dict(rep=rep, events=events, live_rows=cells_held(st),
                                 live_bytes=st["speed"]["live_bytes"], archive_bytes=st["archive"]["bytes"],
                                 rss_kb=m["VmRSS"], hwm_kb=m["VmHWM"]))
            sample(0)
            for i, cum in enumerate(S["mem_steps"]):
                # event times continue where the previous step stopped: ~1M events per day
                start = EVENT_TIME + prev * STEP_MS_DAY // 1000
                gen_finish(gen(b, db.boot, cum - prev, seed=10 + i, start_time=start, step_ms=STEP_MS_DAY))
                daemon.wait_archived(cum)
                sample(cum)
                prev = cum
        finally:
            if daemon:
                daemon.stop()
            db.stop()
    lines = ["lambdad ingesting events spread over time (about 1M events per day of event time, "
             "so the live views grow as a dashboard's would), sampled after each step: peak RSS "
             "(VmHWM) against the cells the 3 views hold and the archive's size. "
             "Median (min–max) over %d runs." % b.reps, "",
             "| events | live cells | live bytes (lambdad's count) | archive | peak RSS | RSS per live cell | archive bytes/event |",
             "|---|---|---|---|---|---|---|"]
    last = None
    for ev in [0] + S["mem_steps"]:
        rs = [r for r in rows if r["events"] == ev]
        hwm = [r["hwm_kb"] / 1024 for r in rs]
        cells = [r["live_rows"] for r in rs]
        idle = {r["rep"]: r["hwm_kb"] for r in rows if r["events"] == 0}
        per_cell = [(r["hwm_kb"] - idle[r["rep"]]) * 1024 / r["live_rows"] for r in rs if r["live_rows"]]
        arch = [r["archive_bytes"] / 1e6 for r in rs]
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            fmt(ev), ms(cells), ms([r["live_bytes"] / 1e6 for r in rs], "MB"), ms(arch, "MB"), ms(hwm, "MB"),
            ms(per_cell) + " B" if per_cell else "n/a",
            ms([r["archive_bytes"] / ev for r in rs]) if ev else "n/a"))
        last = (ev, cells, hwm, arch)
    if b.shared.get("mem_ingest"):
        mi = b.shared["mem_ingest"]
        lines += ["", "After benchmark 1 (%d events within %.0f minutes of event time): %s live cells, "
                  "peak RSS %s, archive %s." % (mi[0]["events"], mi[0]["events"] / 60000, ms([r["live_rows"] for r in mi]),
                                                 ms([r["hwm_kb"] / 1024 for r in mi], "MB"),
                                                 ms([r["archive_bytes"] / 1e6 for r in mi], "MB"))]
    lines += ["", "No batch run happens during these runs (batch.interval_s = 300), so every cell is "
              "a live one; the RSS per live cell column is (peak RSS − idle peak RSS) / live cells."]
    if b.shared.get("mem_batch"):
        lines += ["", "With the batch layer holding the history (benchmark 3's archives, after the "
                  "runs; cells = batch + pending + live rows of the 3 views):", "",
                  "| archived events | archive | cells held | peak RSS | RSS now |", "|---|---|---|---|---|"]
        for r in b.shared["mem_batch"]:
            lines.append("| %s | %.0f MB | %s | %.0f MB | %.0f MB |" % (
                fmt(r["events"]), r["archive_bytes"] / 1e6, fmt(r["cells"]), r["hwm_kb"] / 1024,
                r["rss_kb"] / 1024))
    ev, cells, hwm, arch = last
    R.row("6 memory", "peak RSS at %s events (%s live cells, %s archive)" % (
        fmt(ev), fmt(median(cells)), fmt(median(arch), "MB")), fmt(median(hwm), "MB"), "", "")
    R.section("6. Memory", lines)
