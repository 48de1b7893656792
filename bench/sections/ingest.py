"""1. Ingest throughput and cost: lambdad against a do-nothing consumer."""
import os
import re
import subprocess
import time

from lib.bench import EVENT_TIME
from lib.daemon import Devbroker, Lambdad, cells_held, gen, gen_finish
from lib.procs import BenchError, cpu_s, log, mem_kb, spawn, stop
from lib.stats import fmt, median, ms, ratio

KEY, TITLE = "ingest", "1. Ingest throughput and cost"


def run(b, R):
    S = b.S
    n = S["ingest_events"]
    runs = {"lambdad": [], "null": []}
    for rep in range(b.reps):
        for system in ("lambdad", "null"):
            d = b.dir("ingest-%s-%d" % (system, rep + 1))
            db = Devbroker(b, d, S["partitions"])
            daemon = consumer = g = None
            try:
                if system == "lambdad":
                    daemon = Lambdad(b, d, db.boot)
                    daemon.ready()
                    cpu0 = cpu_s(daemon.pid)
                else:
                    consumer = spawn([b.bin["nullconsumer"], "--brokers", db.boot, "--topic", "pageviews",
                                      "--count", str(n), "--timeout", "30"],
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(d, "null.log"), "ab"))
                    line = consumer.stdout.readline().decode()
                    if not line.startswith("ready"):
                        raise BenchError("bench-nullconsumer did not start (see %s/null.log)" % d)
                t0 = time.monotonic()
                g = gen(b, db.boot, n, seed=1, start_time=EVENT_TIME)
                if system == "lambdad":
                    t1, st = daemon.wait_archived(n)
                    cpu = cpu_s(daemon.pid) - cpu0
                    gs = gen_finish(g)
                    m = mem_kb(daemon.pid)
                    if st["archive"]["rejects"]:
                        raise BenchError("%d rejects" % st["archive"]["rejects"])
                    b.shared.setdefault("mem_ingest", []).append(dict(
                        events=n, live_rows=cells_held(st), live_bytes=st["speed"]["live_bytes"],
                        archive_bytes=st["archive"]["bytes"], rss_kb=m["VmRSS"], hwm_kb=m["VmHWM"]))
                else:
                    line = consumer.stdout.readline().decode()
                    t1 = time.monotonic()
                    mm = re.match(r"done count=(\d+) .*cpu_s=([\d.]+)", line)
                    if not mm or int(mm.group(1)) != n:
                        raise BenchError("bench-nullconsumer: %r (see %s/null.log)" % (line, d))
                    cpu = float(mm.group(2))
                    gs = gen_finish(g)
                if gs["delivered"] != n:
                    raise BenchError("the generator delivered %d of %d" % (gs["delivered"], n))
                el = t1 - t0
                runs[system].append(dict(eps=n / el, cpu_per_m=cpu / (n / 1e6), seconds=el, cpu=cpu,
                                         producer_eps=gs["rate"]))
                log("  ingest %-8s rep %d: %s events/s, %.2f CPU s per million events (producer %s/s)"
                    % (system, rep + 1, fmt(n / el), cpu / (n / 1e6), fmt(gs["rate"])))
            finally:
                if daemon:
                    daemon.stop()
                if consumer:
                    stop(consumer)
                if g:
                    stop(g)
                db.stop()
    lam, nul = runs["lambdad"], runs["null"]
    le, ne = [r["eps"] for r in lam], [r["eps"] for r in nul]
    lc, nc = [r["cpu_per_m"] for r in lam], [r["cpu_per_m"] for r in nul]
    b.shared["ingest"] = dict(eps=median(le), cpu=median(lc))
    R.row("1 ingest", "events/s (end to end)", ms(le), "null consumer " + ms(ne),
          fmt(ratio(median(le), median(ne)), "%"))
    R.row("1 ingest", "CPU s per million events", ms(lc), "null consumer " + ms(nc),
          fmt(ratio(median(lc), median(nc)), "x"))
    R.goal("Ingest: at least 40% of the do-nothing consumer's events/s",
           ratio(median(le), median(ne)) >= 0.40,
           "%s of %s events/s = %s" % (fmt(median(le)), fmt(median(ne)), fmt(ratio(median(le), median(ne)), "%")))
    lines = ["%s events (lambdad-gen --seed 1, lz4, as fast as it can) on a fresh devbroker with %d "
             "partitions per run; the consumer is started first and the time runs from the "
             "generator's start until the consumer has all of them (lambdad: archived and applied, "
             "polled every 10 ms; null consumer: the Nth message). CPU is the consumer process's "
             "user+system time over that span (lambdad from /proc, the null consumer by getrusage)."
             % (fmt(n), S["partitions"]), "",
             "| run | lambdad events/s | lambdad CPU s/M | null events/s | null CPU s/M | producer events/s (lambdad run) |",
             "|---|---|---|---|---|---|"]
    for i in range(len(lam)):
        lines.append("| %d | %s | %.3f | %s | %.3f | %s |" % (
            i + 1, fmt(lam[i]["eps"]), lam[i]["cpu_per_m"], fmt(nul[i]["eps"]), nul[i]["cpu_per_m"],
            fmt(lam[i]["producer_eps"])))
    lines += ["", "The producer, the devbroker and the consumer share the machine's %d cores; "
              "the null consumer's rate is bounded by how fast the generator produces." % os.cpu_count()]
    R.section("1. Ingest throughput and cost", lines)
