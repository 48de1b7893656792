"""4. Queries: dashboard questions under wrk while ingesting, against a
fixed-body server; then a cheap query, ingestion and freshness while heavy
uncached questions run."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

from lib.bench import DAY
from lib.daemon import Devbroker, Lambdad, cache_delta, cells_held, gen, gen_finish
from lib.markers import MARKER_TIME, fresh_summary, freshness_run
from lib.procs import BenchError, Client, NotAvailable, cpu_s, log, spawn, stop
from lib.stats import fmt, median, ms, pct, ratio
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
        stop(g)
        g = None
        heavy = heavy_run(b, daemon, db.boot)
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
    lines += heavy_report(b, R, heavy)
    R.section("4. Queries", lines)


# ---- while heavy questions run (issue #8)

HTTPLOAD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib", "httpload.py")
NO_CACHE = "Cache-Control: no-cache"
# Full-history questions, each request with a `to` of its own (lib/httpload.py): uncached in any build.
HEAVY_PATHS = [
    "/v1/views/views_by_page/query?granularity=all&group_by=page&to={to}",
    "/v1/views/views_by_page/query?granularity=all&group_by=country&to={to}",
]
PING_MS = 20


def cheap_paths(now):
    return [("/readyz", "/readyz"),
            ("small cached question", "/v1/views/traffic_by_country/query?" + urllib.parse.urlencode(
                {"from": now - 3600, "to": now + 3600, "granularity": "hour", "metrics": "views"}))]


def httpload(b, port, paths, *opts):
    return spawn([sys.executable, HTTPLOAD, "--port", str(port)] + list(opts) + list(paths),
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def httpload_finish(p, timeout=60):
    """Stops an httpload process and returns what it measured."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p)
        raise BenchError("httpload did not stop within %d s" % timeout)
    try:
        return json.loads(out)
    except ValueError:
        raise BenchError("httpload printed no figures (exit %s): %r" % (p.returncode, out[-200:]))


def heavy_run(b, daemon, boot):
    """Heavy uncached questions back to back on S['query_heavy_clients']
    connections while a fresh generator produces S['query_rate'] events/s;
    meanwhile cheap questions every PING_MS ms, /v1/status once a second,
    and freshness markers (one window of S['query_heavy_s'] per repetition)."""
    S = b.S
    g = gen(b, boot, 0, rate=S["query_rate"], seed=5)
    heavy, cheap, gs = [], None, None
    cl = Client(daemon.port)
    cache0 = daemon.cache_counts()
    try:
        for i in range(S["query_heavy_clients"]):
            heavy.append(httpload(b, daemon.port, [HEAVY_PATHS[i % len(HEAVY_PATHS)]], "--header", NO_CACHE,
                                  "--timeout", "60"))
        time.sleep(0.5)
        now = int(time.time())
        cpaths = cheap_paths(now)
        cheap = httpload(b, daemon.port, [p for _, p in cpaths], "--interval-ms", str(PING_MS),
                         "--status-every", "1", "--timeout", "15")

        def visible(lo, hi):
            s, body = cl.get("/v1/views/latency/query?from=%d&to=%d&granularity=second&metrics=requests"
                             % (lo, hi))
            if s != 200:
                raise BenchError("marker query answered %s: %s" % (s, body[:200]))
            return [r["ts"] for r in json.loads(body)["rows"]]

        lat, _, missing, nsent = freshness_run(
            b, boot, visible, None, MARKER_TIME + 5_000_000, S["fresh_marker_ms"], b.reps, S["query_heavy_s"],
            0.002, S["query_heavy_wait_s"], daemon.alive)
        cres = httpload_finish(cheap)
        cheap = None
        hres = [httpload_finish(h) for h in heavy]
        heavy = []
        gs = gen_finish(g, terminate=True)
        g = None
        cache1 = daemon.cache_counts()
        daemon.alive()
    finally:
        cl.close()
        for p in heavy + ([cheap] if cheap else []):
            stop(p)
        if g:
            stop(g)
    return dict(lat=lat, missing=missing, nsent=nsent, cheap=cres, cpaths=cpaths, heavy=hres, gen=gs,
                cache=cache_delta(cache0, cache1))


def heavy_report(b, R, h):
    S = b.S
    target = S["query_rate"]
    p50, p99, mx = fresh_summary(h["lat"])
    st = h["cheap"]["status"]
    if len(st) >= 2:
        rate = (st[-1][1] - st[0][1]) / (st[-1][0] - st[0][0])
        per_s = [(b1 - a1) / (b0 - a0) for (a0, a1), (b0, b1) in zip(st, st[1:]) if b0 > a0]
    else:
        rate, per_s = float("nan"), []
    slow = sum(1 for x in per_s if x < target / 2)
    heavy_n = sum(len(r["paths"][p]["lat_ms"]) for r in h["heavy"] for p in r["paths"])
    heavy_lat = [x for r in h["heavy"] for p in r["paths"] for x in r["paths"][p]["lat_ms"]]
    heavy_bad = sum(n for r in h["heavy"] for p in r["paths"] for c, n in r["paths"][p]["codes"].items()
                    if c != "200") + sum(r["paths"][p]["errors"] for r in h["heavy"] for p in r["paths"])
    secs = max((r["seconds"] for r in h["heavy"]), default=float("nan"))
    lines = ["", "**While heavy questions run** (issue #8): %d connections ask full-history questions "
             "back to back (`%s`), each with `%s` and a `to` of its own far in the future, so no "
             "answer cache can serve them whatever the build does with the header; lambdad-gen "
             "produces %s events/s (it delivered %s/s). Meanwhile, from a process of its own "
             "(bench/lib/httpload.py), a cheap question every %d ms, timed one by one, and "
             "`/v1/status` once a second (archived events); and freshness markers as in benchmark "
             "2, %d window(s) of %.1f s." % (
                 S["query_heavy_clients"], "`, `".join(p.replace("&to={to}", "") for p in HEAVY_PATHS),
                 NO_CACHE, fmt(target), fmt(h["gen"]["rate"]), PING_MS, b.reps, S["query_heavy_s"]), "",
             "| figure | value | goal |", "|---|---|---|",
             "| heavy questions answered | %s in %.1f s (p50 %s, max %s)%s | |" % (
                 fmt(heavy_n), secs, fmt(pct(heavy_lat, 50), "ms"),
                 fmt(max(heavy_lat) if heavy_lat else float("nan"), "ms"),
                 ", %d errors or non-200 answers" % heavy_bad if heavy_bad else "")]
    cheap99 = []
    for title, path in h["cpaths"]:
        r = h["cheap"]["paths"][path]
        L = r["lat_ms"]
        bad = sum(n for c, n in r["codes"].items() if c != "200") + r["errors"]
        cheap99.append(pct(L, 99) if not bad else float("inf"))
        lines.append("| cheap: %s: p50 / p99 / max over %d | %s / %s / %s%s | p99 < 5 ms |" % (
            "`%s`" % path if title == path else "%s `%s`" % (title, path), len(L), fmt(pct(L, 50), "ms"), fmt(pct(L, 99), "ms"),
            fmt(max(L) if L else float("nan"), "ms"), ", %d failed" % bad if bad else ""))
    lines += ["| archived events/s over the window | %s (target %s) | at least 95%% of the target |" % (
                  fmt(rate), fmt(target)),
              "| slowest second; seconds under half the target | %s events/s; %d of %d | |" % (
                  fmt(min(per_s)) if per_s else "n/a", slow, len(per_s)),
              "| freshness p50 / p99 / max (markers seen) | %s / %s / %s (%d of %d) | p99 < 100 ms |" % (
                  ms(p50, "ms"), ms(p99, "ms"), ms(mx, "ms"), h["nsent"] - h["missing"], h["nsent"])]
    if h["cache"]:
        lines += ["", "The answer cache during the window (lambdad_query_cache_total): %s." % h["cache"]]
    log("  while heavy questions run: cheap p99 %s, %s events/s archived, freshness p99 %s (%d markers, "
        "%d unseen), %d heavy answers" % (" / ".join(fmt(x, "ms") for x in cheap99), fmt(rate),
                                          ms(p99, "ms"), h["nsent"], h["missing"], heavy_n))
    fresh99 = median(p99) if p99 else float("nan")
    R.row("4 queries", "while heavy queries run: cheap p99 (%s)" % " / ".join(t for t, _ in h["cpaths"]),
          " / ".join(fmt(x, "ms") for x in cheap99), "", "")
    R.row("4 queries", "while heavy queries run: archived events/s, freshness p99",
          "%s, %s" % (fmt(rate), fmt(fresh99, "ms")), "target %s/s" % fmt(target), fmt(ratio(rate, target), "%"))
    R.goal("While heavy queries run: a cheap query's p99 under 5 ms", max(cheap99) < 5,
           " / ".join(fmt(x, "ms") for x in cheap99) + " (%s)" % " / ".join(t for t, _ in h["cpaths"]), issue=8)
    R.goal("While heavy queries run: ingestion keeps its target rate", rate >= 0.95 * target,
           "%s of %s events/s archived (%s); %d of %d seconds under half" % (
               fmt(rate), fmt(target), fmt(ratio(rate, target), "%"), slow, len(per_s)), issue=8)
    R.goal("While heavy queries run: freshness p99 under 100 ms", fresh99 < 100 and not h["missing"],
           "p99 %s%s" % (ms(p99, "ms"), ", %d of %d markers never seen" % (h["missing"], h["nsent"])
                         if h["missing"] else ""), issue=8)
    return lines
