"""10. Import: lambdad import of a JSON lines and a CSV file, against
sqlite3's .import of the same file."""
import json
import os
import random
import re

from lib.bench import EVENT_TIME
from lib.daemon import Devbroker, Lambdad, example_config
from lib.procs import BenchError, free_port, log, run_timed
from lib.stats import fmt, median, ms, ratio

KEY, TITLE = "import", "10. Import"
FIELDS = ["ts", "page", "country", "user", "bytes", "ms"]


def write_files(d, n):
    """n events shaped like lambdad-gen's (README), as JSON lines and as
    CSV with a header: the same events in both."""
    rnd = random.Random(1)
    jl, cs = os.path.join(d, "events.jsonl"), os.path.join(d, "events.csv")
    with open(jl, "w") as fj, open(cs, "w") as fc:
        fc.write(",".join(FIELDS) + "\n")
        for i in range(n):
            e = {"ts": EVENT_TIME + i // 20, "page": "/products/%d" % rnd.randrange(500),
                 "country": rnd.choice(["DE", "FR", "US", "GB", "BR"]),
                 "user": "u%d" % rnd.randrange(100000), "bytes": rnd.randrange(120, 60000),
                 "ms": rnd.randrange(1, 900)}
            fj.write(json.dumps(e, separators=(",", ":")) + "\n")
            fc.write(",".join(str(e[k]) for k in FIELDS) + "\n")
    return jl, cs


def lambdad_import(b, config, path):
    """(wall s, events imported) of lambdad import FILE."""
    wall, _, r = run_timed([b.bin["lambdad"], "import", "-q", "-c", config, "--stream", "pageviews",
                            path], capture_output=True, text=True, timeout=3600)
    m = re.search(r"imported (\d+), rejected (\d+)", r.stdout or "")
    if r.returncode != 0 or not m:
        raise BenchError("lambdad import %s failed: %s" % (path, (r.stderr or r.stdout)[-500:]))
    return wall, int(m.group(1))


def sqlite_import(b, d, path, csv):
    """Wall s of sqlite3's .import of path into a new table (CSV: its
    columns; JSON lines: one text column per line)."""
    db = os.path.join(d, "baseline.db")
    if os.path.exists(db):
        os.remove(db)
    mode = [".import --csv %s t" % path] if csv else \
        [".mode ascii", ".separator \"\\037\" \"\\n\"", "CREATE TABLE t(line TEXT);",
         ".import %s t" % path]
    wall, _, r = run_timed(["sqlite3", db], input="\n".join(mode) + "\n", capture_output=True,
                           text=True, timeout=3600)
    if r.returncode != 0 or r.stderr.strip():
        raise BenchError("sqlite3 .import failed: %s" % r.stderr[-500:])
    return wall


def run(b, R):
    n = 20_000 if b.quick else 1_000_000
    d = b.dir("import-files")
    jl, cs = write_files(d, n)
    mb = {p: os.path.getsize(p) / 1e6 for p in (jl, cs)}
    rates = {k: [] for k in ("jsonl", "csv", "jsonl_daemon", "sqlite_jsonl", "sqlite_csv")}
    for rep in range(b.reps):
        for kind, path in (("jsonl", jl), ("csv", cs)):
            # a fresh archive each time: a second import of a file is skipped
            w = b.dir("import-%s-%d" % (kind, rep + 1))
            config = example_config(w, "127.0.0.1:9", os.path.join(w, "archive.db"), free_port())
            wall, got = lambdad_import(b, config, path)
            if got != n:
                raise BenchError("lambdad import archived %d of %d events" % (got, n))
            rates[kind].append(n / wall)
            rates["sqlite_" + kind].append(n / sqlite_import(b, d, path, kind == "csv"))
            log("  import %-5s rep %d: lambdad %s events/s, sqlite3 .import %s events/s" % (
                kind, rep + 1, fmt(rates[kind][-1]), fmt(rates["sqlite_" + kind][-1])))
        # through a running daemon (POST /v1/admin/import, applied to the live views)
        w = b.dir("import-daemon-%d" % (rep + 1))
        db = Devbroker(b, w, 1)
        daemon = None
        try:
            daemon = Lambdad(b, w, db.boot)
            daemon.ready()
            wall, got = lambdad_import(b, daemon.config, jl)
            if got != n:
                raise BenchError("lambdad import (daemon) archived %d of %d events" % (got, n))
            rates["jsonl_daemon"].append(n / wall)
            log("  import jsonl through the daemon rep %d: %s events/s" % (
                rep + 1, fmt(rates["jsonl_daemon"][-1])))
        finally:
            if daemon:
                daemon.stop()
            db.stop()
    for kind, label in (("jsonl", "JSON lines"), ("csv", "CSV")):
        R.row("10 import", "%s events/s, no daemon running" % label, ms(rates[kind]),
              "sqlite3 .import " + ms(rates["sqlite_" + kind]),
              fmt(ratio(median(rates[kind]), median(rates["sqlite_" + kind])), "x"))
    R.row("10 import", "JSON lines events/s through the running daemon", ms(rates["jsonl_daemon"]),
          "sqlite3 .import " + ms(rates["sqlite_jsonl"]),
          fmt(ratio(median(rates["jsonl_daemon"]), median(rates["sqlite_jsonl"])), "x"))
    lines = [
        "%s events shaped like lambdad-gen's (ts, page, country, user, bytes, ms), written once as "
        "JSON lines (%.1f MB) and as CSV with a header (%.1f MB). lambdad: `lambdad import` of the "
        "file into a new archive of the example config (3 views), wall time of the command: both "
        "passes (hash and CSV types, then decoding, derived fields, chunks compressed with zstd, "
        "%d records per transaction). Through the daemon: the same JSON lines file sent to a "
        "running lambdad (POST /v1/admin/import: spooled to disk, then committed by the speed "
        "thread and applied to the live views). Baseline: sqlite3's `.import` of the same file into "
        "a new database (CSV: `.import --csv`, one column per field; JSON lines: one text "
        "column per line), which parses and stores rows but does not validate JSON, compute "
        "times or compress. Median (min–max) over %d runs." % (
            fmt(n), mb[jl], mb[cs], 20000, b.reps), "",
        "| | lambdad events/s | sqlite3 .import events/s | ratio |", "|---|---|---|---|"]
    for kind, label in (("jsonl", "JSON lines"), ("csv", "CSV"), ("jsonl_daemon", "JSON lines, through the daemon")):
        base = "sqlite_csv" if kind == "csv" else "sqlite_jsonl"
        lines.append("| %s | %s | %s | %s |" % (label, ms(rates[kind]), ms(rates[base]),
                                                fmt(ratio(median(rates[kind]), median(rates[base])), "x")))
    R.section(TITLE, lines)
