"""12. Fan-out: what answering for several shards adds to a query.

The same events on one devbroker topic are read by a single instance
(every partition) and by clusters of 3 and 4 shards (README "Running
several instances"); the same cold questions (the answer cache bypassed:
Cache-Control: no-cache, and a fan-out is never cached) are asked of the
single instance and of one member of each cluster, which asks the other
2 or 3 shards over loopback and merges. Every instance has the same CPU:
the machine's 2 cores, shared."""
import json
import time
import urllib.parse

from lib.bench import DAY, EVENT_TIME, STEP_MS_DAY
from lib.daemon import Devbroker, Lambdad, batch_run, gen, gen_finish
from lib.procs import BenchError, free_port, log, wait_until
from lib.stats import fmt, median, pct

KEY, TITLE = "fanout", "11. Fan-out to other shards"
NOCACHE = {"Cache-Control": "no-cache"}


def questions():
    day = urllib.parse.urlencode
    lo, hi = EVENT_TIME, EVENT_TIME + DAY
    return [
        ("24 h minute series, one filter", "/v1/views/views_by_page/query?" + day(
            {"from": lo, "to": hi, "granularity": "minute", "filter": "country:DE"})),
        ("top 10 pages over the day", "/v1/views/views_by_page/query?" + day(
            {"granularity": "all", "group_by": "page", "order_by": "views", "limit": 10})),
        ("hourly by country", "/v1/views/traffic_by_country/query?" + day(
            {"granularity": "hour", "group_by": "country"})),
        ("total", "/v1/views/views_by_page/query?granularity=all&metrics=views"),
    ]


def shards_of(partitions, n):
    """n shards of the partitions 0..partitions-1, round robin."""
    return [[p for p in range(partitions) if p % n == i] for i in range(n)]


def start_cluster(b, d, boot, partitions, n):
    ports = [free_port() for _ in range(n)]
    parts = shards_of(partitions, n)
    out = []
    for i in range(n):
        peers = [{"url": "http://127.0.0.1:%d" % ports[j], "shard": "s%d" % j}
                 for j in range(n) if j != i]
        out.append(Lambdad(b, d, boot, name="s%d-of-%d" % (i, n), port=ports[i],
                           cluster={"shard": "s%d" % i, "partitions": parts[i], "peers": peers}))
    return out


def timed(client, path, n):
    """n cold answers' times in ms, and the last body."""
    out, body = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        s, body = client.get(path, headers=NOCACHE)
        out.append((time.perf_counter() - t0) * 1000)
        if s != 200:
            raise BenchError("%s answered %s: %s" % (path, s, body[:300]))
    return out, body


def run(b, R):
    S = b.S
    n_events, partitions = S["query_prefill"], max(S["partitions"], 4)
    requests = 20 if b.quick else 200
    d = b.dir("fanout")
    broker = Devbroker(b, d, partitions)
    daemons = []
    try:
        solo = Lambdad(b, d, broker.boot, name="solo")
        daemons.append(solo)
        clusters = {n: start_cluster(b, d, broker.boot, partitions, n) for n in (3, 4)}
        for members in clusters.values():
            daemons += members
        for x in daemons:
            x.ready()
        g = gen(b, broker.boot, n_events, seed=1, start_time=EVENT_TIME, step_ms=STEP_MS_DAY)
        gen_finish(g)
        solo.wait_archived(n_events)
        # each cluster's shards together hold every event, exactly once
        for n, members in clusters.items():
            wait_until(lambda: sum(m.status()["archive"]["events"] for m in members) >= n_events,
                       120, "the %d shards to archive every event" % n)
            total = sum(m.status()["archive"]["events"] for m in members)
            if total != n_events:
                raise BenchError("the %d shards hold %d events, %d were produced" % (n, total, n_events))
        for x in daemons:
            batch_run(x)
        rows, lines = [], []
        for name, path in questions():
            solo_ms, want = timed(solo.http, path, requests)
            fig = {"solo": solo_ms}
            for n, members in clusters.items():
                got_ms, got = timed(members[0].http, path, requests)
                if json.loads(got)["rows"] != json.loads(want)["rows"]:
                    raise BenchError("%s: the %d-shard answer differs from the single instance's"
                                     % (name, n))
                fig[n] = got_ms
            rows.append((name, fig))
            log("  fanout %-32s solo p50 %.2f ms, 3 shards %.2f ms, 4 shards %.2f ms" % (
                name, median(fig["solo"]), median(fig[3]), median(fig[4])))
        lines += [
            "%s events (lambdad-gen --seed 1, one day) on a topic of %d partitions, read by a "
            "single instance and by clusters of 3 and 4 shards (partitions round robin), all with "
            "the demo's views, after one batch run each. Each question is asked %d times in a row "
            "on one keep-alive connection, cold (Cache-Control: no-cache), of the single instance "
            "and of the first member of each cluster, which asks the other 2 or 3 shards; every "
            "cluster answer equals the single instance's. All instances share the machine's 2 "
            "cores, so a shard's scan is not faster than the single instance's here: the figures "
            "are the cost of the fan-out (requests, merging), not the gain of spreading the "
            "work." % (fmt(n_events), partitions, requests), "",
            "| question | single p50 / p99 | 3 shards (2 peers) p50 / p99 | added p50 | "
            "4 shards (3 peers) p50 / p99 | added p50 |",
            "|---|---|---|---|---|---|"]
        for name, fig in rows:
            lines.append("| %s | %s / %s | %s / %s | %s | %s / %s | %s |" % (
                name, fmt(median(fig["solo"]), "ms"), fmt(pct(fig["solo"], 99), "ms"),
                fmt(median(fig[3]), "ms"), fmt(pct(fig[3], 99), "ms"),
                fmt(median(fig[3]) - median(fig["solo"]), "ms"),
                fmt(median(fig[4]), "ms"), fmt(pct(fig[4], 99), "ms"),
                fmt(median(fig[4]) - median(fig["solo"]), "ms")))
            R.row("11 fanout", "%s: p50 with 2 / 3 peers" % name,
                  "%s / %s" % (fmt(median(fig[3]), "ms"), fmt(median(fig[4]), "ms")),
                  "single instance " + fmt(median(fig["solo"]), "ms"),
                  "%s / %s" % (fmt(median(fig[3]) / median(fig["solo"]), "x"),
                               fmt(median(fig[4]) / median(fig["solo"]), "x")))
        R.section(TITLE, lines)
    finally:
        for x in daemons:
            x.stop()
        broker.stop()
