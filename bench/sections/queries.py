"""4. Queries: dashboard questions under wrk while ingesting, against a
fixed-body server; then a cheap query, ingestion and freshness while heavy
uncached questions run."""
import json
import os
import shutil
import subprocess
import time
import urllib.parse

from lib.bench import DAY
from lib.daemon import Devbroker, Lambdad, cells_held, gen, gen_finish
from lib.procs import BenchError, NotAvailable, cpu_s, log, spawn, stop
from lib.stats import fmt, median, ms, ratio
from lib.wrk import wrk

KEY, TITLE = "queries", "4. Queries"


def query_paths(now):
    frm, to = now - DAY, now + 3600
    return [
        ("series", "24 h minute series, one filter",
         "/v1/views/views_by_page/query?" + urllib.parse.urlencode(
             {"from": frm, "to": to, "granularity": "minute", "filter": "country:DE", "metrics": "views"})),
        ("top10", "top 10 pages by views over a day",
         "/v1/views/views_by_page/query?" + urllib.parse.urlencode(
             {"from": frm, "to": to, "granularity": "all", "group_by": "page", "order_by": "views",
              "limit": 10, "metrics": "views"})),
        ("views", "the view list", "/v1/views"),
    ]


def ch_queries(db, now):
    frm, to = now - DAY, now + 3600
    return {
        "series": "SELECT toUInt32(t) AS ts, sum(views) AS views FROM %s.v_page WHERE t >= toDateTime(%d)"
                  " AND t < toDateTime(%d) AND country = 'DE' GROUP BY t ORDER BY t FORMAT JSONCompact"
                  % (db, frm, to),
        "top10": "SELECT page, sum(views) AS views FROM %s.v_page WHERE t >= toDateTime(%d) AND"
                 " t < toDateTime(%d) GROUP BY page ORDER BY views DESC, page LIMIT 10 FORMAT JSONCompact"
                 % (db, frm, to),
        "views": "SELECT name, engine FROM system.tables WHERE database = '%s' FORMAT JSONCompact" % db,
    }


def prefill_args(S, now):
    n = S["query_prefill"]
    return n, now - DAY, max(1, DAY * 1000 // n)


def run(b, R):
    S = b.S
    if not shutil.which("wrk"):
        raise NotAvailable("wrk is not installed (scripts/deps.sh installs it)")
    now = int(time.time())
    b.shared["query_now"] = now
    n, start, step = prefill_args(S, now)
    d = b.dir("queries")
    db = Devbroker(b, d, S["partitions"])
    daemon = g = None
    servers = []
    res = {}
    try:
        daemon = Lambdad(b, d, db.boot)
        daemon.ready()
        gen_finish(gen(b, db.boot, n, seed=3, start_time=start, step_ms=step))
        daemon.wait_archived(n)
        paths = query_paths(now)
        s, body = daemon.http.get(dict((k, p) for k, _, p in paths)["top10"])
        b.shared["top10_lambdad"] = [(r["dims"]["page"], r["metrics"]["views"]) for r in json.loads(body)["rows"]]
        cells = cells_held(daemon.status())
        g = gen(b, db.boot, 0, rate=S["query_rate"], seed=4)
        time.sleep(1.0)
        fixed = {}
        for key, _, path in paths:
            s, body = daemon.http.get(path)
            if s != 200:
                raise BenchError("%s answered %s: %s" % (path, s, body[:200]))
            f = os.path.join(d, key + ".json")
            with open(f, "wb") as out:
                out.write(body)
            p = spawn([b.bin["fixedserver"], "--body-file", f, "--threads", "2"],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            servers.append(p)
            line = p.stdout.readline().decode().strip()
            if not line.isdigit():
                raise BenchError("bench-fixedserver did not start")
            fixed[key] = (int(line), len(body))
        ev0, t0 = daemon.status()["archive"]["events"], time.monotonic()
        for rep in range(b.reps):
            for key, _, path in paths:
                c0, t0w = cpu_s(daemon.pid), time.monotonic()
                lr = wrk(b, "http://127.0.0.1:%d%s" % (daemon.port, path), S["wrk_s"])
                lr["cores"] = (cpu_s(daemon.pid) - c0) / (time.monotonic() - t0w)
                fr = wrk(b, "http://127.0.0.1:%d%s" % (fixed[key][0], path), S["wrk_s"])
                res.setdefault(key, {"lambdad": [], "fixed": []})
                res[key]["lambdad"].append(lr)
                res[key]["fixed"].append(fr)
                log("  queries %-6s rep %d: lambdad %s req/s p99 %s; fixed server %s req/s p99 %s" % (
                    key, rep + 1, fmt(lr["rps"]), fmt(lr["p99"], "ms"), fmt(fr["rps"]), fmt(fr["p99"], "ms")))
        ev1, t1 = daemon.status()["archive"]["events"], time.monotonic()
        daemon.alive()
    finally:
        for p in servers:
            stop(p)
        if g:
            stop(g)
        if daemon:
            daemon.stop()
        db.stop()
    b.shared["queries"] = res
    ingest_rate = (ev1 - ev0) / (t1 - t0)
    lines = ["lambdad holds %s events spread over the last 24 h (%s cells in its 3 views) and "
             "ingests %s events/s more (event time = now) throughout. `wrk -t2 -c8 -d%ds --latency` "
             "per question and repetition; the baseline is bench-fixedserver (libmicrohttpd, the same "
             "thread pool as lambdad, no work per request) answering lambdad's own answer to the same "
             "question, byte for byte, measured in the same window with the same ingestion running. "
             "lambdad ingested %s events/s during the query runs (target %s%s)." % (
                 fmt(n), fmt(cells), fmt(S["query_rate"]), S["wrk_s"], fmt(ingest_rate), fmt(S["query_rate"]),
                 ": it fell behind while answering" if ingest_rate < 0.95 * S["query_rate"] else ""), "",
             "| question | body | lambdad req/s | p50 | p99 | max | lambdad CPU (cores) | fixed req/s | fixed p99 | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    p99s = []
    for key, title, path in query_paths(now):
        L, F = res[key]["lambdad"], res[key]["fixed"]
        lr, fr = [x["rps"] for x in L], [x["rps"] for x in F]
        p99s.append(median([x["p99"] for x in L]))
        lines.append("| %s `%s` | %s B | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            title, path, fmt(fixed[key][1]), ms(lr), ms([x["p50"] for x in L], "ms"),
            ms([x["p99"] for x in L], "ms"), ms([x["max"] for x in L], "ms"),
            ms([x["cores"] for x in L]), ms(fr),
            ms([x["p99"] for x in F], "ms"), fmt(ratio(median(lr), median(fr)), "%")))
        R.row("4 queries", "%s: req/s, p99" % title, "%s, %s" % (fmt(median(lr)), fmt(p99s[-1], "ms")),
              "fixed body %s, %s" % (fmt(median(fr)), fmt(median([x["p99"] for x in F]), "ms")),
              fmt(ratio(median(lr), median(fr)), "%"))
    R.goal("Queries: p99 under 5 ms while ingesting", max(p99s) < 5,
           "p99 " + " / ".join(fmt(p, "ms") for p in p99s) + " (series / top 10 / view list)")
    R.section("4. Queries", lines)
