"""5. Peer: ClickHouse ingesting, answering fresh and answering the same
questions as lambdad, measured the same way."""
import json
import shutil
import time
import urllib.parse

from lib.bench import EVENT_TIME
from lib.clickhouse import ClickHouse, ch_wait_total, ch_warm
from lib.daemon import Devbroker, gen, gen_finish
from lib.markers import MARKER_TIME, fresh_summary, freshness_run
from lib.procs import BenchError, log, stop
from lib.stats import fmt, median, ms, ratio
from lib.wrk import wrk
from sections.queries import ch_queries, prefill_args, query_paths

KEY, TITLE = "peer", "5. Peer: ClickHouse"


def run(b, R):
    t0 = time.monotonic()
    ch = ClickHouse(b)
    b.ch = ch
    log("  clickhouse-server %s up in %.1f s" % (ch.version, time.monotonic() - t0))
    lines = ["Debian's clickhouse-server %s, its stock config.xml rewritten to a temporary folder, "
             "127.0.0.1 only, `<kafka><fetch_wait_max_ms>10</fetch_wait_max_ms>"
             "<auto_offset_reset>smallest</auto_offset_reset></kafka>` (the same fetch wait and start "
             "position as lambdad's). A Kafka engine table (JSONEachRow) reads the devbroker's "
             "topic; three materialized views feed three SummingMergeTree tables, the same "
             "aggregates as lambdad's three views (max/min/avg as aggregate-function states). It "
             "keeps no raw events (lambdad archives every one). Ingest and freshness share one "
             "devbroker and database, the queries have their own; in each, one event is produced "
             "and awaited first, so the group join (about 3 s) is not measured." % ch.version]
    try:
        d = b.dir("peer")
        db = Devbroker(b, d, b.S["partitions"])
        try:
            base = ch_warm(b, ch, "pv", db.boot)
            lines += peer_ingest(b, ch, R, db.boot, base)
            lines += peer_freshness(b, ch, R, db.boot)
        finally:
            db.stop()
        lines += peer_queries(b, ch, R)
    finally:
        b.ch = None
        ch.stop(fast=b.quick)
    R.section("5. Peer: ClickHouse", lines)


def peer_ingest(b, ch, R, boot, base):
    S = b.S
    n = S["ingest_events"]
    runs = []
    for rep in range(b.reps):
        c0 = ch.cpu()
        t0 = time.monotonic()
        g = gen(b, boot, n, seed=1, start_time=EVENT_TIME)
        try:
            t1, tot = ch_wait_total(ch, "pv", base + n)
            cpu = ch.cpu() - c0
            gs = gen_finish(g)
        finally:
            stop(g)
        time.sleep(0.5)
        tot = ch.total("pv")
        if tot != base + n:
            raise BenchError("ClickHouse counted %d events, %d were produced" % (tot - base, n))
        base = tot
        runs.append(dict(eps=n / (t1 - t0), cpu_per_m=cpu / (n / 1e6), producer=gs["rate"]))
        log("  ClickHouse ingest rep %d: %s events/s, %.2f CPU s per million" % (
            rep + 1, fmt(runs[-1]["eps"]), runs[-1]["cpu_per_m"]))
    ce, cc = [r["eps"] for r in runs], [r["cpu_per_m"] for r in runs]
    li = b.shared.get("ingest")
    b.shared["peer_ingest"] = dict(eps=median(ce), cpu=median(cc))
    R.row("5 peer", "ingest events/s", fmt(li["eps"]) if li else "n/a", "ClickHouse " + ms(ce),
          fmt(ratio(li["eps"], median(ce)), "x") if li else "")
    R.row("5 peer", "CPU s per million events", fmt(li["cpu"]) if li else "n/a", "ClickHouse " + ms(cc),
          fmt(ratio(li["cpu"], median(cc)), "x") if li else "")
    if li:
        R.goal("Ingest: at least 3x ClickHouse's events/s", ratio(li["eps"], median(ce)) >= 3,
               "%s vs %s events/s = %s" % (fmt(li["eps"]), fmt(median(ce)), fmt(ratio(li["eps"], median(ce)), "x")))
        R.goal("Ingest: fewer CPU s per million events than ClickHouse (while archiving every event)",
               li["cpu"] < median(cc), "%.2f vs %.2f CPU s per million" % (li["cpu"], median(cc)))
    return ["", "**Ingest**: the same %d events as benchmark 1 (same seed, same times, same "
            "generator), timed from the generator's start until `SELECT sum(views)` over the page "
            "view equals what was produced (polled every 20 ms); CPU is clickhouse-server's "
            "user+system time over that span. %s events/s, %s CPU s per million events; "
            "counts were exact in every run." % (n, ms(ce), ms(cc))]


def peer_freshness(b, ch, R, boot):
    S = b.S
    out = ["", "**Freshness**, measured as in benchmark 2 (a marker every %d ms, polled every 20 ms "
           "with `SELECT toUInt32(t) FROM pv.v_latency WHERE t >= ... AND t < ... GROUP BY t`):" % S["fresh_marker_ms_peer"], "",
           "| rate (events/s) | markers | p50 | p99 | max |", "|---|---|---|---|---|"]
    b.shared["peer_fresh"] = {}
    for ri, rate in enumerate(S["fresh_rates"]):
        def visible(lo, hi):
            sql = ("SELECT toUInt32(t) FROM pv.v_latency WHERE t >= toDateTime(%d) AND t < toDateTime(%d)"
                   " GROUP BY t FORMAT TabSeparated" % (lo, hi))
            return [int(x) for x in ch.q(sql).split()]
        lat, ack, missing, nsent = freshness_run(
            b, boot, visible, rate, MARKER_TIME + 10_000_000 + 1_000_000 * ri, S["fresh_marker_ms_peer"],
            b.reps, S["fresh_window_s"], 0.02, 30)
        if missing:
            raise BenchError("ClickHouse: %d of %d markers never became visible at %d events/s" % (
                missing, nsent, rate))
        p50, p99, mx = fresh_summary(lat)
        b.shared["peer_fresh"][rate] = dict(p50=p50, p99=p99, max=mx)
        lf = b.shared.get("fresh", {}).get(rate)
        log("  ClickHouse freshness %d/s: p50 %s, p99 %s, max %s" % (rate, ms(p50, "ms"), ms(p99, "ms"),
                                                                   ms(mx, "ms")))
        out.append("| %s | %d | %s | %s | %s |" % (fmt(rate), nsent, ms(p50, "ms"), ms(p99, "ms"), ms(mx, "ms")))
        R.row("5 peer", "freshness p99 at %s/s" % fmt(rate), fmt(median(lf["p99"]), "ms") if lf else "n/a",
              "ClickHouse " + fmt(median(p99), "ms"),
              fmt(ratio(median(p99), median(lf["p99"])), "x") + " fresher" if lf else "")
    out += ["", "ClickHouse's Kafka engine writes a block when it has read kafka_max_block_size rows "
            "or after stream_flush_interval_ms (7.5 s by default), so at low rates an event waits "
            "for the flush; its defaults were kept%s." % (
                "" if ch.flush_ms is None else " (except in this quick run: %d ms)" % ch.flush_ms)]
    return out


def peer_queries(b, ch, R):
    S = b.S
    if not shutil.which("wrk"):
        return ["", "**Queries**: not measured: wrk is not installed (scripts/deps.sh installs it)."]
    now = b.shared.get("query_now") or int(time.time())
    n, start, step = prefill_args(S, now)
    d = b.dir("peer-queries")
    db = Devbroker(b, d, S["partitions"])
    g = None
    res = {}
    try:
        ch_warm(b, ch, "qry", db.boot)
        gen_finish(gen(b, db.boot, n, seed=3, start_time=start, step_ms=step))
        ch_wait_total(ch, "qry", n + 1)
        qs = ch_queries("qry", now)
        top = json.loads(ch.q(qs["top10"]))["data"]
        top = [(p, int(v)) for p, v in top]
        mine = b.shared.get("top10_lambdad")
        agree = None if mine is None else (top == mine)
        g = gen(b, db.boot, 0, rate=S["query_rate"], seed=4)
        time.sleep(1.0)
        for rep in range(b.reps):
            for key, sql in qs.items():
                url = "http://127.0.0.1:%d/?%s" % (ch.http_port, urllib.parse.urlencode({"query": sql}))
                r = wrk(b, url, S["wrk_s"])
                res.setdefault(key, []).append(r)
                log("  ClickHouse queries %-6s rep %d: %s req/s p99 %s" % (key, rep + 1, fmt(r["rps"]),
                                                                         fmt(r["p99"], "ms")))
    finally:
        if g:
            stop(g)
        db.stop()
    b.shared["peer_queries"] = res
    out = ["", "**Queries**: the same three questions as benchmark 4 in SQL over the HTTP port "
           "(GET /?query=...), on the same %d events over 24 h plus %s events/s of ingestion, same "
           "wrk settings. The top-10 answer before the steady ingestion %s lambdad's." % (
               n, fmt(S["query_rate"]),
               "was identical to" if agree else ("differed from" if agree is False else "was not compared with")),
           "", "| question | SQL | ClickHouse req/s | p50 | p99 | lambdad req/s | lambdad p99 | lambdad/ClickHouse |",
           "|---|---|---|---|---|---|---|---|"]
    mine = b.shared.get("queries", {})
    for key, title, _ in query_paths(now):
        C = res[key]
        cr = [x["rps"] for x in C]
        L = mine.get(key, {}).get("lambdad", [])
        lr = median([x["rps"] for x in L]) if L else None
        out.append("| %s | `%s` | %s | %s | %s | %s | %s | %s |" % (
            title, qs[key].replace("|", "\\|"), ms(cr), ms([x["p50"] for x in C], "ms"),
            ms([x["p99"] for x in C], "ms"), fmt(lr) if lr else "n/a",
            fmt(median([x["p99"] for x in L]), "ms") if L else "n/a", fmt(ratio(lr, median(cr)), "x")))
        R.row("5 peer", "%s: req/s" % title, fmt(lr) if lr else "n/a", "ClickHouse " + ms(cr),
              fmt(ratio(lr, median(cr)), "x"))
    if mine:
        rs = [ratio(median([x["rps"] for x in mine[k]["lambdad"]]), median([x["rps"] for x in res[k]]))
              for k in res if k in mine]
        R.goal("Queries: at least 10x ClickHouse's requests/s on the same questions", min(rs) >= 10,
               " / ".join(fmt(x, "x") for x in rs) + " (series / top 10 / view list)")
    if agree is False:
        raise BenchError("ClickHouse's top 10 %s differs from lambdad's %s" % (top, mine))
    return out
