"""8. Soak (issue #9): everything at once for ten minutes (--soak-minutes):
steady ingestion, wrk on a mix of questions, a batch run every 10 s and a
reload (SIGHUP) every minute; then resident memory must be flat, nothing
must have failed, and every view's totals must equal what was produced.

Only run when named (`--only soak`): it would make the default run ten
minutes longer."""
import json
import os
import re
import shutil
import signal
import time
import urllib.parse

from lib.daemon import Devbroker, Lambdad, batch_run, gen, gen_finish
from lib.procs import BenchError, Client, NotAvailable, log, mem_kb, stop
from lib.stats import fmt
from lib.wrk import wrk_mix_finish, wrk_mix_start

KEY, TITLE = "soak", "8. Soak"

RATE = 5000             # events/s produced for the whole run
LATE_SHARE = 0.01       # events up to 3 days old: each batch run also recomputes older days
BAD_SHARE = 0.001       # malformed events: every one must end up as an archive reject
# The devbroker's cost grows with the message sets a partition holds (librdkafka's
# mock cluster walks them on every fetch): at 5k events/s, lambdad-gen's default
# linger.ms of 5 makes sets of one or two events, and after a minute the broker, not
# lambdad, falls behind. 100 ms makes sets of ~30 events; nothing here measures freshness.
LINGER_MS = 100
BATCH_S = 10            # batch.interval_s
RELOAD_S = 60           # a SIGHUP this often (a third of a run shorter than 3 minutes)
SAMPLE_S = 2            # RSS and /v1/status this often
WRK_CONNS, WRK_DELAY_MS = 8, 8   # wrk: 8 connections, each pausing 8 ms after an answer (<= ~1,000 questions/s)
CACHE_MB = (64, 48)     # serving.answer_cache_mb alternates between these at each reload
FLAT_MB, FLAT_SHARE = 20, 0.10   # flat: end RSS at most max(20 MB, 10%) above the reference
MB = 1024.0
VIEWS = [("views_by_page", "views", "bytes", "slowest", None),
         ("traffic_by_country", "views", "bytes", None, "avg_ms"),
         ("latency", "requests", None, "max_ms", "avg_ms")]
NO_CACHE = {"Cache-Control": "no-cache"}
LEVEL = re.compile(r"\]: (EMERG|ALERT|CRIT|ERROR|WARN)\s+(.*)")


def mix_paths(now):
    """wrk's questions: a series with a filter, a group-by, a top-N, a
    multi-value filter, granularity=all totals, a per-second series, and the
    view list."""
    q = "/v1/views/%s/query?"
    u = urllib.parse.urlencode
    hour = dict(frm=now - 3600, to=now + 3600)

    def rng(**kw):
        d = dict(kw)
        d["from"], d["to"] = hour["frm"], hour["to"]
        return u(d)
    return [
        q % "views_by_page" + rng(granularity="minute", filter="country:DE", metrics="views"),
        q % "traffic_by_country" + rng(granularity="hour", group_by="country"),
        q % "views_by_page" + u(dict(granularity="all", group_by="page", order_by="views", limit=10,
                                     metrics="views")),
        q % "views_by_page" + u(dict(granularity="all", group_by="country", filter="country:DE,country:FR")),
        q % "latency" + u(dict(granularity="all")),
        q % "latency" + rng(granularity="second", metrics="requests,max_ms"),
        "/v1/views",
    ]


def expected_totals(dump):
    """What the views must hold, from the generator's own record of every
    payload (--dump): the valid events (JSON objects with a numeric ts;
    lambdad-gen's malformed ones fail one of those), their sum of bytes,
    max and min of ms, and sum of ms."""
    n = nbad = bsum = msum = 0
    mmax, mmin = None, None
    with open(dump, "rb") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                nbad += 1
                continue
            if not isinstance(ev, dict) or not isinstance(ev.get("ts"), (int, float)) or \
                    isinstance(ev.get("ts"), bool):
                nbad += 1
                continue
            n += 1
            bsum += ev["bytes"]
            msum += ev["ms"]
            mmax = ev["ms"] if mmax is None else max(mmax, ev["ms"])
            mmin = ev["ms"] if mmin is None else min(mmin, ev["ms"])
    return dict(events=n, malformed=nbad, bytes=bsum, ms_sum=msum, ms_max=mmax, ms_min=mmin)


def view_totals(http):
    """{view: (metrics over all time, watermark)} from one granularity=all question each."""
    out = {}
    for view, *_ in VIEWS:
        s, body = http.get("/v1/views/%s/query?granularity=all" % view, NO_CACHE)
        if s != 200:
            raise BenchError("%s answered %s: %s" % (view, s, body[:200]))
        a = json.loads(body)
        if len(a["rows"]) != 1:
            raise BenchError("%s: %d rows for a total over all time" % (view, len(a["rows"])))
        out[view] = (a["rows"][0]["metrics"], a["watermark"])
    return out


def totals_diff(tot, exp):
    """The differences between the views' totals and what was produced ([] = exact)."""
    bad = []

    def check(what, got, want, approx=False):
        ok = abs(got - want) <= 1e-9 * abs(want) if approx and got is not None else got == want
        if not ok:
            bad.append("%s: %s, expected %s" % (what, got, want))
    for view, count, bsum, mx, avg in VIEWS:
        m = tot[view][0]
        check(view + " " + count, m[count], exp["events"])
        if bsum:
            check(view + " " + bsum, m[bsum], exp["bytes"])
        if mx:
            check(view + " " + mx, m[mx], exp["ms_max"])
        if avg:
            check(view + " " + avg, m[avg], exp["ms_sum"] / exp["events"], approx=True)
    check("latency min_ms", tot["latency"][0]["min_ms"], exp["ms_min"])
    return bad


def slope_mb_min(samples):
    """Least-squares slope of [(seconds, kB)] in MB per minute."""
    if len(samples) < 2:
        return float("nan")
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return sum((t - mt) * (v - mv) for t, v in samples) / den / MB * 60 if den else float("nan")


def log_levels(path):
    """{level: {message with numbers as N: count}} for the WARN-and-worse lines of a log."""
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = LEVEL.search(line)
            if m:
                msg = re.sub(r"\d+", "N", m.group(2).strip())[:160]
                lv = out.setdefault(m.group(1), {})
                lv[msg] = lv.get(msg, 0) + 1
    return out


class Runs:
    """A counter of /v1/status that starts again from 0 when a reload
    restarts the layers: the total over the whole run."""

    def __init__(self):
        self.base = self.last = 0

    def see(self, v):
        if v < self.last:
            self.base += self.last
        self.last = v

    @property
    def total(self):
        return self.base + self.last


def run(b, R):
    if not shutil.which("wrk"):
        raise NotAvailable("wrk is not installed (scripts/deps.sh installs it)")
    dur = max(20, int(round(b.soak_minutes * 60)))
    n_events = RATE * dur
    every = min(RELOAD_S, dur // 3)
    d = b.dir("soak")
    dump = os.path.join(d, "produced.jsonl")
    db = Devbroker(b, d, b.S["partitions"])
    daemon = g = w = None
    st_http = None
    samples, reloads, status_fail = [], [], 0
    runs, fails = Runs(), Runs()
    try:
        daemon = Lambdad(b, d, db.boot, batch_interval_s=BATCH_S)
        daemon.ready()
        with open(daemon.config) as f:
            config_text = f.read()
        if config_text.count('"answer_cache_mb": %d' % CACHE_MB[0]) != 1:
            raise BenchError("cannot find serving.answer_cache_mb in %s" % daemon.config)
        fp0 = daemon.status()["config_fingerprint"]
        now = int(time.time())
        paths = mix_paths(now)
        for p in paths:
            s, body = daemon.http.get(p)
            if s != 200:
                raise BenchError("%s answered %s: %s" % (p, s, body[:200]))
        log("  %d s: %s events/s (%s events, %.1f%% late, %.1f%% malformed), wrk on %d questions, a batch "
            "run every %d s, a reload every %d s" % (dur, fmt(RATE), fmt(n_events), LATE_SHARE * 100,
                                                    BAD_SHARE * 100, len(paths), BATCH_S, every))
        t0 = time.monotonic()
        g = gen(b, db.boot, n_events, rate=RATE, seed=9,
                extra=["--late-share", str(LATE_SHARE), "--bad-share", str(BAD_SHARE), "--dump", dump,
                       "--linger-ms", str(LINGER_MS)])
        w = wrk_mix_start(daemon.port, paths, dur, conns=WRK_CONNS, delay_ms=WRK_DELAY_MS)
        st_http = Client(daemon.port, timeout=5)
        next_reload, next_sample, pending, fp = every, 0.0, None, fp0
        while g.poll() is None:
            el = time.monotonic() - t0
            if el > dur + 300:
                raise BenchError("lambdad-gen had not produced %s events after %.0f s" % (fmt(n_events), el))
            daemon.alive()
            if el >= next_sample:
                next_sample += SAMPLE_S
                st = None
                try:
                    s, body = st_http.get("/v1/status")
                    st = json.loads(body) if s == 200 else None
                except OSError:
                    pass
                if st is None:
                    status_fail += 1
                else:
                    runs.see(st["batch"]["runs"])
                    fails.see(st["batch"]["failures"])
                    if st["batch"]["last_error"]:
                        raise BenchError("a batch run failed: %s" % st["batch"]["last_error"])
                samples.append((el, mem_kb(daemon.pid)["VmRSS"], st and st["archive"]["events"],
                                st and sum(p["lag"] or 0 for ps in st["speed"]["partitions"].values() for p in ps),
                                st and st.get("segments", {}).get("cache_bytes"),
                                st and st.get("segments", {}).get("cache_entries")))
            if pending is None and el >= next_reload and el < dur - 5:
                # alternate the answer cache's budget, so each reload is a new config
                budget = CACHE_MB[1] if len(reloads) % 2 == 0 else CACHE_MB[0]
                with open(daemon.config, "w") as f:
                    f.write(config_text.replace('"answer_cache_mb": %d' % CACHE_MB[0],
                                                '"answer_cache_mb": %d' % budget))
                pending = dict(at=el, epoch=time.time(), fp=fp)
                daemon.p.send_signal(signal.SIGHUP)
                next_reload += every
            if pending is not None:
                # done once /v1/status shows the new config and /readyz answers 200
                try:
                    s, body = st_http.get("/v1/status")
                    nfp = json.loads(body)["config_fingerprint"] if s == 200 else None
                    if nfp and nfp != pending["fp"] and st_http.get("/readyz")[0] == 200:
                        pending.update(s=time.monotonic() - t0 - pending["at"], end_epoch=time.time())
                        reloads.append(pending)
                        log("  %3.0f s: reload %d done in %.2f s, RSS %.0f MB" % (
                            pending["at"], len(reloads), pending["s"], samples[-1][1] / MB))
                        fp, pending = nfp, None
                except (OSError, ValueError, KeyError):
                    pass
                if pending and time.monotonic() - t0 - pending["at"] > 60:
                    raise BenchError("reload at %.0f s not done after 60 s" % pending["at"])
            time.sleep(0.05 if pending else 0.2)
        gs = gen_finish(g)
        g = None
        if gs["failed"]:
            raise BenchError("lambdad-gen: %d deliveries failed" % gs["failed"])
        wr = wrk_mix_finish(w, timeout=max(60, dur - (time.monotonic() - t0) + 60))
        w = None
        # everything produced is archived: events and rejects
        _, st = daemon.wait_archived(gs["delivered"] - gs["malformed"], idle_timeout=60, interval=0.1)
        t_arch = time.monotonic() - t0
        rss_end = mem_kb(daemon.pid)["VmRSS"]
        exp = expected_totals(dump)
        live = view_totals(daemon.http)
        _, st_final = batch_run(daemon)
        batch = view_totals(daemon.http)
        runs.see(st_final["batch"]["runs"])
        fails.see(st_final["batch"]["failures"])
        rss_after = mem_kb(daemon.pid)
        daemon.alive()
        if daemon.stop() != 0:
            raise BenchError("lambdad did not stop cleanly (exit %s)" % daemon.p.returncode)
        fresh = fresh_reference(b, db.boot, daemon.archive, paths)
    finally:
        if st_http:
            st_http.close()
        for p in (w, g):
            if p:
                stop(p)
        if daemon and daemon.p.poll() is None:
            daemon.stop()
        db.stop()
    with open(os.path.join(d, "samples.json"), "w") as f:   # for a closer look (--keep)
        json.dump(dict(samples=samples, reloads=reloads), f)
    levels = log_levels(daemon.log_path)
    F = dict(dur=dur, every=every, gs=gs, exp=exp, st=st, st_final=st_final, live=live, batch=batch, wr=wr,
             samples=samples, reloads=reloads, status_fail=status_fail, runs=runs.total, fails=fails.total,
             levels=levels, rss_end=rss_end, rss_after=rss_after, fresh=fresh, t_arch=t_arch,
             paths=paths)
    report(b, R, F)


def fresh_reference(b, boot, archive, paths):
    """What the same data costs without the soak's history: a new lambdad on
    the soak's archive (and views file) asks each question, recomputes each
    view in full (every partition the soak's last runs recomputed, and more)
    and asks them again. Returns its VmRSS and VmHWM (kB) then."""
    d = b.dir("soak-fresh")
    daemon = Lambdad(b, d, boot, archive=archive, batch_interval_s=604800)
    try:
        daemon.ready()
        for rnd in (0, 1):
            for p in paths:
                s, body = daemon.http.get(p)
                if s != 200:
                    raise BenchError("fresh lambdad: %s answered %s: %s" % (p, s, body[:200]))
            for view, *_ in (VIEWS if rnd == 0 else []):
                batch_run(daemon, view=view)
        m = mem_kb(daemon.pid)
        daemon.alive()
        return m
    finally:
        daemon.stop()


def in_reload(sec, reloads):
    """Whether epoch second `sec` lies in a reload's window (SIGHUP to the
    new config answering, a second of slack either side)."""
    return any(r["epoch"] - 1 <= sec <= r.get("end_epoch", r["epoch"] + 60) + 1 for r in reloads)


def report(b, R, F):
    dur, gs, exp, wr = F["dur"], F["gs"], F["exp"], F["wr"]
    samples = [(t, kb) for t, kb, *_ in F["samples"]]
    lags = [(s[0], s[3]) for s in F["samples"] if s[3] is not None]
    seg = max(((s[4], s[5], s[0]) for s in F["samples"] if s[4] is not None), default=None)
    max_lag = max(lags, key=lambda x: x[1]) if lags else (0, float("nan"))
    t_ref = min(60.0, dur / 4.0)
    ref = next((kb for t, kb in samples if t >= t_ref), samples[0][1] if samples else 0)
    peak = max(kb for _, kb in samples)
    end = F["rss_end"]
    half = [(t, kb) for t, kb in samples if t >= dur / 2.0]
    slope = slope_mb_min(half)
    allowed = max(FLAT_MB * MB, FLAT_SHARE * ref)
    flat = end <= ref + allowed

    # totals: produced = archived + rejects; the views' totals equal the valid events
    st = F["st"]
    arch_ok = (st["archive"]["events"] == exp["events"] == gs["delivered"] - gs["malformed"]
               and st["archive"]["rejects"] == exp["malformed"] == gs["malformed"]
               and gs["delivered"] == gs["produced"])
    diff_live = totals_diff(F["live"], exp)
    diff_batch = totals_diff(F["batch"], exp)
    wm = F["batch"]["views_by_page"][1]
    wm_ok = wm.get("live_events") == 0 and wm.get("batch_seq") == F["st_final"]["archive"]["last_seq"]
    exact = arch_ok and not diff_live and not diff_batch and wm_ok

    codes = wr["codes"]
    non2xx = sum(n for c, n in codes.items() if not 200 <= c <= 299)
    bad_in = sum(n for s, n in wr["bad"].items() if in_reload(s, F["reloads"]))
    bad_out = non2xx - bad_in
    errors = F["levels"].get("ERROR", {})
    n_err = sum(sum(v.values()) for k, v in F["levels"].items() if k in ("EMERG", "ALERT", "CRIT", "ERROR"))
    n_warn = sum(F["levels"].get("WARN", {}).values())
    reload_s = [r["s"] for r in F["reloads"]]

    log("  RSS: %.0f MB at %.0f s, max %.0f MB, %.0f MB at the end; second half's slope %+.2f MB/min" % (
        ref / MB, t_ref, peak / MB, end / MB, slope))
    log("  wrk: %s requests, %s non-2xx (%s around reloads), socket errors: %s" % (
        fmt(wr["requests"]), fmt(non2xx), fmt(bad_in), wr["sockerr"] or "none"))
    log("  %d reloads (%s s each), %d batch runs (%d failed), %d ERROR and %d WARN lines in the log" % (
        len(reload_s), "/".join("%.1f" % s for s in reload_s) or "-", F["runs"], F["fails"], n_err, n_warn))
    log("  totals: %s" % ("exact" if exact else "NOT exact: " + "; ".join(
        diff_live + diff_batch + ([] if arch_ok else ["archive %s events, %s rejects" % (
            st["archive"]["events"], st["archive"]["rejects"])]) + ([] if wm_ok else ["watermark %s" % wm]))))

    mins = []
    for m in range(1, dur // 60 + 1):
        kb = next((kb for t, kb in samples if t >= m * 60), None)
        if kb is not None:
            mins.append("%d: %.0f" % (m, kb / MB))
    code_list = ", ".join("%d: %s" % (c, fmt(n)) for c, n in sorted(codes.items()))
    lines = [
        "%g minutes of everything at once on one lambdad (the demo's config, `batch.interval_s` %d) and a "
        "devbroker (%d partitions): lambdad-gen produces %s events/s (%.0f%% late by up to 3 days, %.1f%% "
        "malformed; every payload also written to a file, `--dump`); `wrk -t2 -c%d` asks %d questions in "
        "turn (bench/lib/wrk_mix.lua), each connection pausing %d ms after each answer, for the whole run; every %d s a SIGHUP reloads the config "
        "(`serving.answer_cache_mb` alternates %d/%d, so each reload is a new config, seen in "
        "`config_fingerprint`); VmRSS and `/v1/status` every %d s. At the end, once every produced event "
        "is archived, each view's totals over all time (`granularity=all`) are compared with what the "
        "generator's record says, first as served (batch + live), then after one more batch run (batch "
        "only). lambdad-gen runs with `--linger-ms %d`: the devbroker (librdkafka's mock cluster) walks "
        "a partition's message sets on every fetch, and at this rate the default 5 ms makes sets of one "
        "or two events, so that after a minute the broker itself falls behind (measured: its CPU grows "
        "with the sets it holds)." % (round(dur / 60.0, 1), BATCH_S, b.S["partitions"], fmt(RATE), LATE_SHARE * 100, BAD_SHARE * 100,
                    WRK_CONNS, len(F["paths"]), WRK_DELAY_MS, F["every"], CACHE_MB[0], CACHE_MB[1], SAMPLE_S, LINGER_MS), "",
        "The machine is shared: other work running at the same time slows everything, but no verdict "
        "below depends on speed.", "",
        "| figure | value | goal | verdict |", "|---|---|---|---|",
        "| resident memory (VmRSS): at %.0f s / max / at the end | %.1f / %.1f / %.1f MB | end at most "
        "%.0f MB above the first (max(%d MB, %.0f%%)) | %s |" % (
            t_ref, ref / MB, peak / MB, end / MB, allowed / MB, FLAT_MB, FLAT_SHARE * 100,
            "**met**" if flat else "**missed**"),
        "| RSS slope over the second half | %+.2f MB/min (%d samples) | | |" % (slope, len(half)),
        "| events produced / delivered / malformed / late | %s / %s / %s / %s in %.0f s (%s/s) | | |" % (
            fmt(gs["produced"]), fmt(gs["delivered"]), fmt(gs["malformed"]), fmt(gs["late"]), gs["seconds"],
            fmt(gs["rate"])),
        "| largest Kafka lag seen (events produced, not yet consumed) | %s at %.0f s | | |" % (
            fmt(max_lag[1]), max_lag[0]),
        "| segment cache (`/v1/status` `segments`): the largest seen | %s | | |" % (
            "%.1f MB in %d segments at %.0f s" % (seg[0] / MB / MB, seg[1], seg[2]) if seg else "n/a"),
        "| archive: events / rejects | %s / %s | %s / %s | %s |" % (
            fmt(st["archive"]["events"]), fmt(st["archive"]["rejects"]), fmt(exp["events"]),
            fmt(exp["malformed"]), "**met**" if arch_ok else "**missed**"),
        "| views' totals over all time, batch + live | %s | equal to the generator's record | %s |" % (
            "exact" if not diff_live else "; ".join(diff_live), "**met**" if not diff_live else "**missed**"),
        "| views' totals after a last batch run | %s; watermark `%s` | exact, live_events 0 | %s |" % (
            "exact" if not diff_batch else "; ".join(diff_batch), json.dumps(wm),
            "**met**" if not diff_batch and wm_ok else "**missed**"),
        "| wrk: requests, req/s, p50 / p99 / max | %s, %s, %s / %s / %s | | |" % (
            fmt(wr["requests"]), fmt(wr["rps"]), fmt(wr["p50"], "ms"), fmt(wr["p99"], "ms"),
            fmt(wr.get("max", float("nan")), "ms")),
        "| wrk: answers by status | %s | | |" % code_list,
        "| wrk: non-2xx answers, outside / around reloads | %s / %s | 0 / 0 | %s |" % (
            fmt(bad_out), fmt(bad_in), "**met**" if not non2xx else "**missed**"),
        "| wrk: socket errors | %s | | |" % (wr["sockerr"] or "none"),
        "| reloads: count, seconds each (SIGHUP to the new config answering) | %d, %s | | |" % (
            len(reload_s), ", ".join("%.2f" % s for s in reload_s) or "-"),
        "| batch runs, failed | %d, %d | every %d s, 0 failed | %s |" % (
            F["runs"], F["fails"], BATCH_S, "**met**" if not F["fails"] else "**missed**"),
        "| ERROR (or worse) / WARN lines in lambdad's log | %d / %d | 0 ERROR | %s |" % (
            n_err, n_warn, "**met**" if not n_err else "**missed**"),
        "| `/v1/status` unanswered (of %d samples) | %d | | |" % (len(F["samples"]), F["status_fail"]),
        "| all produced archived at / RSS after the last batch run | %.0f s / %.1f MB (peak %.1f MB) | | |" % (
            F["t_arch"], F["rss_after"]["VmRSS"] / MB, F["rss_after"]["VmHWM"] / MB),
        "| a fresh lambdad on the same archive, after the same questions and a full recompute of each "
        "view: RSS (peak) | %.1f MB (%.1f MB); the soaked one after its last run: %+.1f MB | | |" % (
            F["fresh"]["VmRSS"] / MB, F["fresh"]["VmHWM"] / MB,
            (F["rss_after"]["VmRSS"] - F["fresh"]["VmRSS"]) / MB),
    ]
    if mins:
        lines += ["", "RSS (MB) at the start of each minute: " + ", ".join(mins) + "."]
    if wr["bodies"]:
        lines += ["", "First body of each non-2xx status: " + "; ".join(
            "%s `%s`" % (c, t) for c, t in sorted(wr["bodies"].items())) + "."]
    for lv in ("ERROR", "WARN"):
        msgs = F["levels"].get(lv, {})
        if msgs:
            lines += ["", "%s lines (numbers as N):" % lv, ""] + [
                "- %d× `%s`" % (n, m.replace("`", "'")) for m, n in sorted(msgs.items(), key=lambda x: -x[1])[:12]]
    lines += ["", "Questions: " + ", ".join("`%s`" % p for p in F["paths"]) + "."]
    R.section(TITLE, lines)
    R.row("8 soak", "RSS at %.0f s / max / end; slope of the second half" % t_ref,
          "%.0f / %.0f / %.0f MB; %+.2f MB/min" % (ref / MB, peak / MB, end / MB, slope), "", "")
    R.row("8 soak", "wrk requests (non-2xx), reloads, batch runs", "%s (%s), %d, %d" % (
        fmt(wr["requests"]), fmt(non2xx), len(reload_s), F["runs"]), "", "")
    dur_s = "%g min" % round(dur / 60.0, 1)
    R.goal("Soak (%s): resident memory flat" % dur_s, flat,
           "%.0f MB at %.0f s, max %.0f MB, %.0f MB at the end (%+.2f MB/min over the second half)" % (
               ref / MB, t_ref, peak / MB, end / MB, slope), issue=9)
    R.goal("Soak (%s): no errors (outside reloads)" % dur_s, not bad_out and not n_err and not F["fails"],
           "%d non-2xx of %s answers outside reloads, %d ERROR lines, %d failed batch runs" % (
               bad_out, fmt(wr["requests"]), n_err, F["fails"]), issue=9)
    R.goal("Soak (%s): no non-2xx answer, also during reloads" % dur_s, not non2xx,
           "%d non-2xx around %d reloads%s; socket errors: %s" % (
               bad_in, len(reload_s), " (%s)" % ", ".join("%s× %d" % (fmt(n), c) for c, n in sorted(codes.items())
                                                          if not 200 <= c <= 299) if non2xx else "",
               wr["sockerr"] or "none"), issue=9)
    R.goal("Soak (%s): exact totals at the end" % dur_s, exact,
           "%s events, %s rejects; %s" % (fmt(exp["events"]), fmt(exp["malformed"]),
                                          "every view exact" if exact else "differences: see section 8"),
           issue=9)
    if not exact:   # a failure of the section (bench/run exits 1), its figures kept above
        R.failures.append((TITLE, "totals not exact: %s" % "; ".join(diff_live + diff_batch) or
                           "archive or watermark (see the section)"))
