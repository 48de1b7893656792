"""2. Freshness: from produce to visible in a query, with markers."""
import json

from lib.daemon import Devbroker, Lambdad
from lib.markers import MARKER_TIME, fresh_summary, freshness_run
from lib.procs import BenchError, Client, log
from lib.stats import fmt, median, ms, pct

KEY, TITLE = "freshness", "2. Freshness"


def run(b, R):
    S = b.S
    lines = ["Background events at a steady rate (lambdad-gen --rate, event time = now) and, every "
             "%d ms, one marker event whose event time is a second of its own (in 2040), produced "
             "by bench-probe the moment it is asked (linger.ms=0). The clock starts just before "
             "the marker is handed to the probe and stops when a query of the `latency` view "
             "(per second, no dimensions: a cheap query that does not slow the daemon down) over "
             "the outstanding markers' seconds first shows it (polled every 2 ms over one "
             "keep-alive connection; the figure is an upper bound by at most one poll). One repetition is one %.1f s window of markers within one "
             "run; p50/p99/max are per window, shown as median (min–max) over the windows."
             % (S["fresh_marker_ms"], S["fresh_window_s"]), "",
             "| rate (events/s) | markers | p50 | p99 | max | pooled p99 | produce→ack p50 |",
             "|---|---|---|---|---|---|---|"]
    b.shared["fresh"] = {}
    for ri, rate in enumerate(S["fresh_rates"]):
        d = b.dir("fresh-%d" % rate)
        db = Devbroker(b, d, S["partitions"])
        daemon = None
        try:
            daemon = Lambdad(b, d, db.boot)
            daemon.ready()
            cl = Client(daemon.port)

            def visible(lo, hi):
                s, body = cl.get("/v1/views/latency/query?from=%d&to=%d&granularity=second&metrics=requests"
                                 % (lo, hi))
                if s != 200:
                    raise BenchError("marker query answered %s: %s" % (s, body[:200]))
                return [r["ts"] for r in json.loads(body)["rows"]]

            lat, ack, missing, nsent = freshness_run(
                b, db.boot, visible, rate, MARKER_TIME + 1_000_000 * ri, S["fresh_marker_ms"], b.reps,
                S["fresh_window_s"], 0.002, 10, daemon.alive)
            st = daemon.status()
            cl.close()
        finally:
            if daemon:
                daemon.stop()
            db.stop()
        if missing:
            raise BenchError("%d of %d markers never became visible at %d events/s" % (missing, nsent, rate))
        p50, p99, mx = fresh_summary(lat)
        pooled = [x * 1000 for w in lat for x in w]
        b.shared["fresh"][rate] = dict(p50=p50, p99=p99, max=mx)
        log("  freshness %d/s: p50 %s, p99 %s, max %s (%d markers, %d events archived)"
            % (rate, ms(p50, "ms"), ms(p99, "ms"), ms(mx, "ms"), nsent, st["archive"]["events"]))
        lines.append("| %s | %d | %s | %s | %s | %s | %s |" % (
            fmt(rate), nsent, ms(p50, "ms"), ms(p99, "ms"), ms(mx, "ms"), fmt(pct(pooled, 99), "ms"),
            fmt(pct(ack, 50) * 1000, "ms")))
        R.row("2 freshness", "produce→visible at %s/s: p50 / p99 / max" % fmt(rate),
              "%s / %s / %s" % (fmt(median(p50), "ms"), fmt(median(p99), "ms"), fmt(median(mx), "ms")),
              "—", "")
        if rate == 20_000:
            R.goal("Freshness: p99 under 100 ms at 20k events/s", median(p99) < 100,
                   "p99 %s" % ms(p99, "ms"))
    lines += ["", "What bounds it: lambdad makes events visible after the archive transaction that "
              "holds them commits (archive.commit_interval_ms = 50 in the demo config), plus the "
              "devbroker's fetch wait (10 ms) and the generator's/probe's produce path."]
    R.section("2. Freshness", lines)
