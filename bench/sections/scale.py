"""7. Scale: lambdad on a year of history (50M events over 365 days in a
full run; --scale-events N): start-up, resident memory, the views file
against the archive, and cold dashboard questions against ClickHouse on
the same events (issue #8)."""
import json
import os
import shutil
import subprocess
import time
import urllib.parse

from lib.bench import DAY, EVENT_TIME
from lib.clickhouse import ClickHouse
from lib.daemon import Devbroker, Lambdad, batch_run, cache_delta, cells_held
from lib.procs import (BenchError, Client, NotAvailable, clear_peak_rss, log, mem_kb, spawn, stop,
                       wait_until)
from lib.stats import fmt, pct, ratio

KEY, TITLE = "scale", "7. Scale"

VIEWS = ["views_by_page", "traffic_by_country", "latency"]
NO_CACHE = {"Cache-Control": "no-cache"}
MB = 1024 * 1024


def questions(end):
    """The five dashboard questions over views_by_page, ending at `end`:
    (key, title, lambdad parameters, ClickHouse SQL with {frm} {to}, the
    dimension each row is keyed by). Every one goes through views_by_page
    (the view the others roll up from) and ClickHouse's v_page, so both
    answer from the same aggregate."""
    def sql(select, where="", group="ts", order="ts"):
        return ("SELECT %s FROM sc.v_page WHERE t >= toDateTime({frm}) AND t < toDateTime({to})%s"
                " GROUP BY %s ORDER BY %s FORMAT JSONCompact" % (select, where, group, order))
    return [
        ("series", "24 h minute series, filter country=DE",
         dict(frm=end - DAY, granularity="minute", filter="country:DE", metrics="views"),
         sql("toUInt32(t) AS ts, sum(views) AS views", " AND country = 'DE'"), None),
        ("hourly", "7-day hourly by country",
         dict(frm=end - 7 * DAY, granularity="hour", group_by="country", metrics="views"),
         sql("toUInt32(toStartOfHour(t)) AS ts, country, sum(views) AS views", group="ts, country",
             order="ts, country"), "country"),
        ("daily", "30-day daily by country",
         dict(frm=end - 30 * DAY, granularity="day", group_by="country", metrics="views"),
         sql("toUInt32(toStartOfDay(t)) AS ts, country, sum(views) AS views", group="ts, country",
             order="ts, country"), "country"),
        ("top10", "30-day top 10 pages",
         dict(frm=end - 30 * DAY, granularity="all", group_by="page", order_by="views", limit=10,
              metrics="views"),
         sql("page, sum(views) AS views", group="page", order="views DESC, page LIMIT 10"), "page"),
        ("monthly", "365-day monthly totals",
         dict(frm=end - 365 * DAY, granularity="month", metrics="views,bytes"),
         sql("toUInt32(toDateTime(toStartOfMonth(t))) AS ts, sum(views) AS views, sum(bytes) AS bytes"),
         None),
    ]


def lambdad_path(params, to):
    q = dict(params)
    q["from"] = q.pop("frm")
    q["to"] = to
    order = ["from", "to", "granularity", "filter", "group_by", "order_by", "limit", "metrics"]
    return "/v1/views/views_by_page/query?" + urllib.parse.urlencode([(k, q[k]) for k in order if k in q])


def lambdad_rows(body, dim):
    """An answer as sorted (ts or -1, dimension value or '', views)."""
    return sorted((r.get("ts", -1), r.get("dims", {}).get(dim, "") if dim else "", int(r["metrics"]["views"]))
                  for r in json.loads(body)["rows"])


def ch_rows(body, key, dim):
    out = []
    for r in json.loads(body)["data"]:
        if key == "top10":
            out.append((-1, r[0], int(r[1])))
        elif dim:
            out.append((int(r[0]), r[1], int(r[2])))
        else:
            out.append((int(r[0]), "", int(r[1])))
    return sorted(out)


def files_bytes(path):
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def mem_mb(pid):
    m = mem_kb(pid)
    return m["VmRSS"] / 1024, m["VmHWM"] / 1024


def views_answer(daemon, end, timeout):
    """Polls one small question per view (the last hour before `end`,
    cache bypassed) until every view answers 200 (503: still being
    recomputed); returns the seconds since the daemon was started."""
    todo = list(VIEWS)

    def ok():
        daemon.alive()
        for v in list(todo):
            try:
                s, body = daemon.http.get("/v1/views/%s/query?from=%d&to=%d&granularity=all" % (v, end - 3600, end),
                                          headers=NO_CACHE)
            except OSError:
                return False
            if s == 200:
                todo.remove(v)
            elif s != 503:
                raise BenchError("view %s answered %s: %s" % (v, s, body[:200]))
        return not todo
    wait_until(ok, timeout, "every view to answer", 0.02)
    return time.monotonic() - daemon.t_start


def measured_batch(daemon, view, timeout):
    """One batch run (all that is pending, or a full recompute of `view`)
    with its peak resident memory: VmHWM is reset just before (clear_refs),
    so the VmHWM after is the run's own peak."""
    rss0, _ = mem_mb(daemon.pid)
    reset = clear_peak_rss(daemon.pid)
    wall, st = batch_run(daemon, view, timeout=timeout)
    rss1, hwm = mem_mb(daemon.pid)
    src = st["views"].get(view, {}) if view else st["batch"]
    dur = src.get("last_duration_ms")
    return dict(before=rss0, after=rss1, peak=hwm, peak_is_run=reset, wall=wall,
                seconds=dur / 1000.0 if dur is not None else wall, scanned=src.get("last_rows_scanned"),
                cells=cells_held(st))


def cold_rounds(ask, qs, requests, budget_s):
    """Asks every question `requests` times, round-robin (q1..q5, q1..q5, ...),
    each request with `to` one second later than the previous round's (no
    event lies at or after `end`, so the answer is the same), timed one by
    one. ask(key, i) -> seconds. Stops early, after at least 3 rounds, when
    the rounds take longer than budget_s."""
    lat = {k: [] for k, *_ in qs}
    t0 = time.monotonic()
    for i in range(requests):
        for k, *_ in qs:
            lat[k].append(ask(k, i) * 1000)
        if i >= 2 and time.monotonic() - t0 > budget_s:
            break
    return lat


def run(b, R):
    S = b.S
    n, days = b.scale_events, S["scale_days"]
    end = EVENT_TIME - EVENT_TIME % DAY          # 2026-11-23T00:00:00Z: the last event is just before
    start = end - days * DAY
    slow = max(1.0, n / 1e6)                     # timeouts grow with the archive
    d = b.dir("scale")
    archive = os.path.join(d, "archive.db")
    t0 = time.monotonic()
    r = subprocess.run([b.bin["mkarchive"], "--out", archive, "--count", str(n), "--seed", "5",
                        "--start-time", str(start), "--span", str(days * DAY)], capture_output=True)
    if r.returncode != 0:
        raise BenchError("bench-mkarchive failed: %s" % r.stderr.decode())
    t_mk = time.monotonic() - t0
    abytes0 = files_bytes(archive)
    log("  archive: %s events over %d days, %s, written in %.1f s" % (fmt(n), days, fmt(abytes0 / MB, "MB"), t_mk))
    qs = questions(end)
    views_path = archive + "-views"
    F = dict(n=n, days=days, archive0=abytes0)
    db = Devbroker(b, d, S["partitions"])
    daemon = None
    answers = {}
    try:
        # First start: no views file. batch.interval_s at its maximum: no scheduled run interferes.
        daemon = Lambdad(b, d, db.boot, archive=archive, batch_interval_s=604800)
        F["ready1"] = daemon.ready(120 * slow)
        F["views1"] = views_answer(daemon, end, 600 * slow)
        F["rss1"], F["hwm1"] = mem_mb(daemon.pid)
        log("  first start (no views file): /readyz after %.2f s, every view answers after %.2f s; "
            "RSS %s (peak %s)" % (F["ready1"], F["views1"], fmt(F["rss1"], "MB"), fmt(F["hwm1"], "MB")))
        F["batch1"] = measured_batch(daemon, None, 600 * slow)
        F["batch2"] = measured_batch(daemon, "views_by_page", 600 * slow)
        for k, title in (("batch1", "batch run (all pending)"), ("batch2", "full recompute of views_by_page")):
            x = F[k]
            log("  %s: %.2f s; RSS %s before, peak %s, %s after" % (
                title, x["seconds"], fmt(x["before"], "MB"), fmt(x["peak"], "MB"), fmt(x["after"], "MB")))
        F["views_bytes1"], F["archive1"] = files_bytes(views_path), files_bytes(archive)
        daemon.stop(timeout=120)
        daemon = None

        # Second start: the views file exists.
        daemon = Lambdad(b, d, db.boot, archive=archive, batch_interval_s=604800)
        F["ready2"] = daemon.ready(120 * slow)
        F["views2"] = views_answer(daemon, end, 600 * slow)
        F["rss2"], F["hwm2"] = mem_mb(daemon.pid)
        log("  second start (views file exists): /readyz after %.2f s, every view answers after %.2f s; "
            "RSS %s (peak %s)" % (F["ready2"], F["views2"], fmt(F["rss2"], "MB"), fmt(F["hwm2"], "MB")))

        # Cold answers: the answer cache bypassed (header) and every request its own `to`.
        paths = {k: params for k, _, params, _, _ in qs}
        dims = {k: dim for k, _, _, _, dim in qs}
        cache0 = daemon.cache_counts()

        def ask(k, i):
            t = time.perf_counter()
            s, body = daemon.http.get(lambdad_path(paths[k], end + i), headers=NO_CACHE)
            el = time.perf_counter() - t
            if s != 200:
                raise BenchError("%s answered %s: %s" % (lambdad_path(paths[k], end + i), s, body[:300]))
            if k not in answers:
                answers[k] = lambdad_rows(body, dims[k])
            return el
        F["lat"] = cold_rounds(ask, qs, S["scale_requests"], 300)
        F["cache"] = cache_delta(cache0, daemon.cache_counts())
        F["rss3"], F["hwm3"] = mem_mb(daemon.pid)
        F["views_bytes"], F["archive"] = files_bytes(views_path), files_bytes(archive)
        for k, title, *_ in qs:
            L = F["lat"][k]
            log("  lambdad cold %-7s: p50 %s, p99 %s over %d (%d rows)" % (
                k, fmt(pct(L, 50), "ms"), fmt(pct(L, 99), "ms"), len(L), len(answers[k])))
        log("  RSS after the cold questions %s; views file %s, archive %s" % (
            fmt(F["rss3"], "MB"), fmt(F["views_bytes"] / MB, "MB"), fmt(F["archive"] / MB, "MB")))
        daemon.stop(timeout=120)
        daemon = None
    finally:
        if daemon:
            daemon.stop(timeout=120)
        db.stop()

    peer, peer_note = None, None
    if b.args.no_peer:
        peer_note = "skipped (--no-peer)"
    else:
        try:
            peer = clickhouse_side(b, archive, n, qs, answers, end, slow)
        except NotAvailable as e:
            peer_note = "not measured: %s" % e
            log("  ClickHouse %s" % peer_note)
    report(b, R, F, qs, answers, peer, peer_note, t_mk)


# ---------------------------------------------------------------- ClickHouse


def clickhouse_side(b, archive, n, qs, answers, end, slow):
    """The same events in ClickHouse (PEERS.md's recipe): raw events from
    lambdad-archive dump into a MergeTree, aggregated into a SummingMergeTree
    like views_by_page, OPTIMIZE FINAL; then the same cold questions."""
    client = "clickhouse-client"
    if not shutil.which(client):
        raise NotAvailable("clickhouse-client is not installed (bench/deps.sh installs it)")
    ch = ClickHouse(b, "scale-clickhouse", timezone="UTC")
    P = dict(version=ch.version)
    try:
        ch.q("CREATE DATABASE sc")
        # ts and ms can be fractional in the generator's events: Float64 (PEERS.md).
        ch.q("CREATE TABLE sc.ev (ts Float64, page String, country String, user String, bytes UInt64,"
             " ms Float64) ENGINE = MergeTree() ORDER BY tuple()")
        ch.q("CREATE TABLE sc.v_page (t DateTime, page String, country String, views UInt64, bytes UInt64,"
             " slowest AggregateFunction(max, Float64)) ENGINE = SummingMergeTree()"
             " PARTITION BY toYYYYMM(t) ORDER BY (t, page, country)")
        t0 = time.monotonic()
        dump = spawn([b.bin["archive"], "dump", "--stream", "pageviews", archive], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
        load = spawn([client, "--host", "127.0.0.1", "--port", str(ch.tcp_port),
                      "--input_format_skip_unknown_fields=1", "--query", "INSERT INTO sc.ev FORMAT JSONEachRow"],
                     stdin=dump.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dump.stdout.close()
        try:
            _, lerr = load.communicate(timeout=900 * slow)
            _, derr = dump.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise BenchError("loading ClickHouse took longer than %.0f s" % (900 * slow))
        finally:
            stop(load)
            stop(dump)
        if dump.returncode != 0 or load.returncode != 0:
            raise BenchError("lambdad-archive dump | clickhouse-client failed: %s %s" % (
                derr.decode(errors="replace")[-300:], lerr.decode(errors="replace")[-300:]))
        P["load_s"] = time.monotonic() - t0
        got = int(ch.q("SELECT count() FROM sc.ev").strip())
        if got != n:
            raise BenchError("ClickHouse loaded %d events, the archive holds %d" % (got, n))
        # Aggregated 30 days at a time, so the GROUP BY's memory stays bounded at any size.
        t0 = time.monotonic()
        lo, hi = [int(float(x)) for x in ch.q("SELECT min(ts), max(ts) FROM sc.ev FORMAT TabSeparated").split()]
        for a in range(lo - lo % DAY, hi + 1, 30 * DAY):
            ch.q("INSERT INTO sc.v_page SELECT toStartOfMinute(toDateTime(toUInt32(ts))) AS t, page, country,"
                 " count() AS views, sum(bytes) AS bytes, maxState(ms) AS slowest FROM sc.ev"
                 " WHERE ts >= %d AND ts < %d GROUP BY t, page, country" % (a, a + 30 * DAY))
        P["agg_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        parts = ch.q("SELECT DISTINCT partition FROM system.parts WHERE database = 'sc' AND table = 'v_page'"
                     " AND active FORMAT TabSeparated").split()
        for p in parts:
            ch.q("OPTIMIZE TABLE sc.v_page PARTITION %s FINAL" % p)
        P["optimize_s"] = time.monotonic() - t0
        ch.q("DROP TABLE sc.ev")
        P["rows"] = int(ch.q("SELECT count() FROM sc.v_page").strip())
        P["parts"], P["bytes"] = [int(x) for x in ch.q(
            "SELECT count(), sum(bytes_on_disk) FROM system.parts WHERE database = 'sc' AND table = 'v_page'"
            " AND active FORMAT TabSeparated").split()]
        total = int(ch.q("SELECT sum(views) FROM sc.v_page").strip())
        if total != n:
            raise BenchError("ClickHouse's v_page counts %d events, the archive holds %d" % (total, n))
        log("  ClickHouse %s: loaded in %.1f s, aggregated in %.1f s, OPTIMIZE FINAL %.1f s: %s rows in %d "
            "parts, %s" % (ch.version, P["load_s"], P["agg_s"], P["optimize_s"], fmt(P["rows"]), P["parts"],
                           fmt(P["bytes"] / MB, "MB")))
        sqls = {k: sql for k, _, _, sql, _ in qs}
        frms = {k: params["frm"] for k, _, params, _, _ in qs}
        dims = {k: dim for k, _, _, _, dim in qs}
        cl = Client(ch.http_port)
        P["agree"] = {}

        def ask(k, i):
            path = "/?" + urllib.parse.urlencode({"query": sqls[k].format(frm=frms[k], to=end + i)})
            t = time.perf_counter()
            s, body = cl.get(path)
            el = time.perf_counter() - t
            if s != 200:
                raise BenchError("ClickHouse: %s -> %s %s" % (sqls[k][:80], s, body[:300]))
            if k not in P["agree"]:
                P["agree"][k] = ch_rows(body, k, dims[k]) == answers.get(k)
            return el
        try:
            P["lat"] = cold_rounds(ask, qs, b.S["scale_requests"], 300)
        finally:
            cl.close()
        P["rss"], _ = mem_mb(ch.p.pid)
        for k, *_ in qs:
            L = P["lat"][k]
            log("  ClickHouse cold %-7s: p50 %s, p99 %s over %d; same answer as lambdad: %s" % (
                k, fmt(pct(L, 50), "ms"), fmt(pct(L, 99), "ms"), len(L), "yes" if P["agree"][k] else "NO"))
    finally:
        ch.stop(fast=True)
    return P


# ---------------------------------------------------------------- report


def report(b, R, F, qs, answers, P, peer_note, t_mk):
    n, days = F["n"], F["days"]
    size = "%s events over %d days" % (fmt(n), days)
    b1, b2 = F["batch1"], F["batch2"]
    steady = max(F["rss1"], b1["after"], b2["after"], F["rss2"], F["rss3"])
    # A build that recomputes its views at start (views answer 503 meanwhile) has its batch
    # peak during the first start: VmHWM since start against the RSS once every view answers.
    start_ratio = ratio(F["hwm1"], F["rss1"])
    peak_ratio = max(ratio(b1["peak"], b1["before"]), ratio(b2["peak"], b2["before"]), start_ratio)
    vratio = ratio(F["views_bytes"], F["archive"])
    lines = ["An archive of %s (bench-mkarchive --span: lambdad-gen's events, seed 5, spread evenly, the "
             "last one just before %s; %s, written in %.1f s) and the demo's three views "
             "(config/lambdad.example.json, batch.interval_s set to its maximum so that only the runs "
             "below happen). lambdad is started twice on it: without a views file, then again once the "
             "batch views exist." % (size, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EVENT_TIME - EVENT_TIME % DAY)),
                                     fmt(F["archive0"] / MB, "MB"), t_mk), "",
             "**Start-up and memory** (resident memory is VmRSS; a peak is VmHWM, which is reset just "
             "before each batch run, so a run's peak is its own):", "",
             "| moment | seconds since start | RSS | peak RSS |", "|---|---|---|---|",
             "| first start (no views file): /readyz | %.2f s | | |" % F["ready1"],
             "| first start: every view answers (503 while recomputed) | %.2f s | %s | %s (since start) |" % (
                 F["views1"], fmt(F["rss1"], "MB"), fmt(F["hwm1"], "MB"))]
    for x, title in ((b1, "batch run (`POST /v1/admin/recompute`: all that is pending)"),
                     (b2, "full recompute of views_by_page (`?view=views_by_page`)")):
        lines.append("| %s: %.2f s (POST to done %.2f s), %s rows scanned | | %s before, %s after | %s%s |" % (
            title, x["seconds"], x["wall"], fmt(x["scanned"]) if x["scanned"] is not None else "n/a",
            fmt(x["before"], "MB"), fmt(x["after"], "MB"), fmt(x["peak"], "MB"),
            " (%s of before)" % fmt(ratio(x["peak"], x["before"]), "x") if x["peak_is_run"]
            else " (since start: clear_refs refused)"))
    lines += ["| second start (views file exists): /readyz | %.2f s | | |" % F["ready2"],
              "| second start: every view answers | %.2f s | %s | %s (since start) |" % (
                  F["views2"], fmt(F["rss2"], "MB"), fmt(F["hwm2"], "MB")),
              "| after the cold questions below | | %s | %s (since start) |" % (
                  fmt(F["rss3"], "MB"), fmt(F["hwm3"], "MB")), "",
              "**Storage**: the views file (`<archive>-views` plus its `-wal`) holds %s, the archive "
              "(plus `-wal`) %s: **%s of the archive** (after the first start's batch runs: %s and %s)." % (
                  fmt(F["views_bytes"] / MB, "MB"), fmt(F["archive"] / MB, "MB"), fmt(vratio, "%"),
                  fmt(F["views_bytes1"] / MB, "MB"), fmt(F["archive1"] / MB, "MB")), "",
              "**Cold answers**: five dashboard questions over views_by_page, asked round-robin %d "
              "times each, one at a time over one keep-alive connection, with `Cache-Control: "
              "no-cache` and each request's `to` one second later than the previous round's (no "
              "event lies after the archive's end, so the answer stays the same, and no answer "
              "cache can serve it even in a build that ignores the header). \"Cold\" is about the "
              "answer cache only: the OS page cache and lambdad's own segment cache are as the "
              "previous requests left them. Times are from request to last byte, measured by "
              "bench/run. ClickHouse is asked the same questions in SQL over its HTTP port, on "
              "the same events, after lambdad was stopped." % max(len(v) for v in F["lat"].values())]
    if F["cache"]:
        lines += ["", "lambdad's answer cache while asked (lambdad_query_cache_total): %s." % F["cache"]]
    lines += ["", "| question | lambdad `GET /v1/views/views_by_page/query?...` | rows | lambdad p50 | p99 | "
              "ClickHouse p50 | p99 | ClickHouse p99 / lambdad p99 | same answer |",
              "|---|---|---|---|---|---|---|---|---|"]
    l99, ratios = [], []
    for k, title, params, sql, _ in qs:
        L = F["lat"][k]
        C = P["lat"][k] if P else []
        l99.append(pct(L, 99))
        rr = ratio(pct(C, 99), pct(L, 99)) if C else float("nan")
        ratios.append(rr)
        lines.append("| %s | `%s` | %s | %s | %s | %s | %s | %s | %s |" % (
            title, lambdad_path(params, "END").split("?", 1)[1], fmt(len(answers.get(k, []))),
            fmt(pct(L, 50), "ms"), fmt(pct(L, 99), "ms"),
            fmt(pct(C, 50), "ms") if C else "n/a", fmt(pct(C, 99), "ms") if C else "n/a",
            fmt(rr, "x") if C else "n/a",
            ("yes" if P["agree"].get(k) else "**no**") if P else "n/a"))
        R.row("7 scale", "cold %s: p50 / p99" % title, "%s / %s" % (fmt(pct(L, 50), "ms"), fmt(pct(L, 99), "ms")),
              "ClickHouse %s / %s" % (fmt(pct(C, 50), "ms"), fmt(pct(C, 99), "ms")) if C else "",
              fmt(rr, "x") + " faster" if C else "")
    lines += ["", "END is the archive's end (%d) plus the request's round number, in seconds." % (
        EVENT_TIME - EVENT_TIME % DAY)]
    if P:
        lines += ["", "**ClickHouse** %s (PEERS.md's recipe): `lambdad-archive dump` piped into "
                  "`clickhouse-client ... INSERT INTO sc.ev FORMAT JSONEachRow` (a MergeTree of raw "
                  "events; %.1f s), then `INSERT INTO sc.v_page SELECT toStartOfMinute(...) AS t, page, "
                  "country, count(), sum(bytes), maxState(ms) ... GROUP BY t, page, country` 30 days at "
                  "a time (%.1f s) into a SummingMergeTree partitioned by month and ordered by (t, page, "
                  "country): the views_by_page aggregate; `OPTIMIZE TABLE ... PARTITION p FINAL` for "
                  "every partition (%.1f s); the raw table dropped. v_page: %s rows in %d parts, %s on "
                  "disk (lambdad's views file: %s, all three views). clickhouse-server's RSS after the "
                  "questions: %s. Each answer of ClickHouse was compared with lambdad's, row by row." % (
                      P["version"], P["load_s"], P["agg_s"], P["optimize_s"], fmt(P["rows"]), P["parts"],
                      fmt(P["bytes"] / MB, "MB"), fmt(F["views_bytes"] / MB, "MB"), fmt(P["rss"], "MB")), "",
                  "SQL of each question (`{frm}` and `{to}` as lambdad's `from` and `to`):", ""]
        lines += ["- %s: `%s`" % (title, sql) for _, title, _, sql, _ in qs]
    else:
        lines += ["", "**ClickHouse**: %s." % peer_note]
    R.row("7 scale", "start to /readyz: first / second start (%s)" % size,
          "%s / %s" % (fmt(F["ready1"], "s"), fmt(F["ready2"], "s")), "", "")
    R.row("7 scale", "start until every view answers: first / second start",
          "%s / %s" % (fmt(F["views1"], "s"), fmt(F["views2"], "s")), "", "")
    R.row("7 scale", "RSS steady (largest at rest) / batch peak", "%s / %s" % (
        fmt(steady, "MB"), fmt(max(b1["peak"], b2["peak"]), "MB")), "", fmt(peak_ratio, "x") + " peak/before")
    R.row("7 scale", "views file / archive bytes", "%s / %s" % (
        fmt(F["views_bytes"] / MB, "MB"), fmt(F["archive"] / MB, "MB")),
          "ClickHouse v_page %s" % fmt(P["bytes"] / MB, "MB") if P else "", fmt(vratio, "%"))
    at = " (at %s)" % size
    R.goal("Resident memory at most 400 MB steady" + at, steady <= 400,
           "largest RSS at rest %s (first start %s, after the batch runs %s / %s, second start %s, after "
           "the cold questions %s)" % (fmt(steady, "MB"), fmt(F["rss1"], "MB"), fmt(b1["after"], "MB"),
                                       fmt(b2["after"], "MB"), fmt(F["rss2"], "MB"), fmt(F["rss3"], "MB")),
           issue=8)
    R.goal("A batch run's peak at most 1.5x steady" + at,
           peak_ratio <= 1.5 if b1["peak_is_run"] and b2["peak_is_run"] else None,
           "peak %s / %s against %s / %s before the run = %s / %s; first start: peak %s against %s "
           "once every view answered = %s" % (
               fmt(b1["peak"], "MB"), fmt(b2["peak"], "MB"), fmt(b1["before"], "MB"), fmt(b2["before"], "MB"),
               fmt(ratio(b1["peak"], b1["before"]), "x"), fmt(ratio(b2["peak"], b2["before"]), "x"),
               fmt(F["hwm1"], "MB"), fmt(F["rss1"], "MB"), fmt(start_ratio, "x")), issue=8)
    R.goal("Start to /readyz at most 2 s" + at, max(F["ready1"], F["ready2"]) <= 2,
           "%s without a views file, %s with one (every view answering after %s / %s)" % (
               fmt(F["ready1"], "s"), fmt(F["ready2"], "s"), fmt(F["views1"], "s"), fmt(F["views2"], "s")),
           issue=8)
    R.goal("Views file at most 25% of the archive's bytes" + at, vratio <= 0.25,
           "%s of %s = %s" % (fmt(F["views_bytes"] / MB, "MB"), fmt(F["archive"] / MB, "MB"), fmt(vratio, "%")),
           issue=8)
    keys = " / ".join(k for k, *_ in qs)
    R.goal("Cold dashboard questions p99 at most 50 ms each" + at, max(l99) <= 50,
           " / ".join(fmt(x, "ms") for x in l99) + " (%s)" % keys, issue=8)
    if P:
        agree = all(P["agree"].get(k) for k, *_ in qs)
        R.goal("Cold dashboard questions at least 3x faster than ClickHouse" + at,
               min(ratios) >= 3 if agree else False,
               " / ".join(fmt(x, "x") for x in ratios) + " (p99 over p99; %s)%s" % (
                   keys, "" if agree else "; the answers differed"), issue=8)
    else:
        R.goal("Cold dashboard questions at least 3x faster than ClickHouse" + at, None,
               "ClickHouse " + peer_note, issue=8)
    if P and not all(P["agree"].get(k) for k, *_ in qs):
        msg = "ClickHouse's answers differ from lambdad's for: %s" % ", ".join(
            k for k, *_ in qs if not P["agree"].get(k))
        log("  FAILED: %s" % msg)
        R.failures.append((TITLE, msg))
        lines += ["", "**Failed**: %s." % msg]
    R.section(TITLE, lines)
