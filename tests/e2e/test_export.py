"""Answers out as files: format=csv on the query API, lambdad export
(through the running daemon and from the files once it stopped) and
lambdad-archive dump's filters.

- CSV: the header and every field equal the JSON answer's rows (numbers
  as the same text, byte for byte), quantiles one column each, null an
  empty unquoted field, and dimension values full of quotes, commas, line
  breaks and edge spaces round-trip through Python's csv module; the
  watermark comes in X-Lambdad-* headers; a cached CSV answer keeps them.
- export --format jsonl gives the JSON answer's rows byte for byte, one per
  line; --format csv the query API's CSV; both the same through the daemon
  and from the files (segments + the archive after R); errors are clear.
- dump --from/--to keeps exactly the events of that event-time range.
"""
import csv
import io
import json
import os
import subprocess
import sys
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import LAMBDAD, Daemon, Devbroker, Workdir, free_port, produce  # noqa: E402
from model import assert_rows, expected  # noqa: E402

ARCHTOOL = os.environ.get("LAMBDAD_ARCHIVE", "build/tools/lambdad-archive")
DAY = 86400
BASE = 1763856000   # 2025-11-23T00:00:00Z
STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_s"}
VIEW = {"name": "pages", "stream": "pageviews", "granularity": "minute",
        "dimensions": ["page", "country"],
        "metrics": [{"name": "views", "type": "count"},
                    {"name": "bytes", "type": "sum", "field": "bytes"},
                    {"name": "slowest", "type": "max", "field": "ms"},
                    {"name": "avg_ms", "type": "avg", "field": "ms"},
                    {"name": "latency", "type": "quantiles", "field": "ms"}]}
# Values a CSV writer must quote (and two it must not), plus a missing page (null).
NASTY = ['plain', 'with,comma', 'say "hi"', 'two\nlines', 'cr\r\nlf', ' lead', 'trail ',
         '\ttab', '', '"', ',', 'ünï cödé', '=1+2', "it's"]

QUERIES = [
    {"granularity": "all", "group_by": "page"},
    {"granularity": "hour", "group_by": "country,page", "from": str(BASE + 3600),
     "to": str(BASE + DAY + 7200)},
    {"granularity": "day", "metrics": "views,latency,avg_ms", "quantiles": "0.5,0.999",
     "group_by": "page", "filter": "country:DE,country:FR"},
    {"granularity": "all", "group_by": "page", "order_by": "bytes", "limit": "3"},
    {"from": str(BASE), "to": str(BASE + 600), "group_by": "country", "metrics": "views,slowest"},
]


def events(n, seed, start):
    import random
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ev = {"ts": start + rng.randrange(0, 2 * DAY), "country": rng.choice(["DE", "FR", "US"]),
              "bytes": rng.randrange(1, 10000), "ms": rng.randrange(1, 2000) / 4}
        page = rng.choice(NASTY + [None])
        if page is not None:
            ev["page"] = page
        out.append(json.dumps(ev, ensure_ascii=False))
    return out


def raw_rows(body):
    """The rows of a JSON answer with every number as its text."""
    return json.loads(body, parse_float=str, parse_int=str)["rows"]


def csv_expected(rows, q, view):
    """The CSV lines that the JSON rows (numbers as text) must give."""
    group = [d for d in q.get("group_by", "").split(",") if d]
    metrics = [m for m in q.get("metrics", "").split(",") if m] or [m["name"] for m in view["metrics"]]
    qnames = ["p" + format(float(x) * 100, "g") for x in q.get("quantiles", "0.5,0.9,0.99").split(",")]
    types = {m["name"]: m["type"] for m in view["metrics"]}
    header = ([] if q.get("granularity") == "all" else ["time", "ts"]) + group
    for m in metrics:
        header += ["%s.%s" % (m, n) for n in qnames] if types[m] == "quantiles" else [m]
    lines = [header]
    for r in rows:
        line = [] if q.get("granularity") == "all" else [r["time"], r["ts"]]
        line += ["" if r["dims"][d] is None else r["dims"][d] for d in group]
        for m in metrics:
            v = r["metrics"][m]
            vals = [v[n] for n in qnames] if isinstance(v, dict) else [v]
            line += ["" if x is None else x for x in vals]
        lines.append(line)
    return lines


class ExportTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("export")
        self.broker = Devbroker(["pageviews:2"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[VIEW],
                        extra={"batch": {"interval_s": 3600, "partition": "day"}})

    def tearDown(self):
        self.d.stop()
        self.broker.stop()
        self.wd.cleanup()

    def http(self, params, headers=None):
        url = "http://127.0.0.1:%d/v1/views/pages/query?%s" % (self.d.port, urllib.parse.urlencode(params))
        req = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def export(self, *args, config=None):
        r = subprocess.run([LAMBDAD, "export", "-c", config or self.d.config_path] + list(args),
                           capture_output=True, timeout=120)
        return r.returncode, r.stdout, r.stderr.decode(errors="replace")

    @staticmethod
    def export_args(q):
        args = []
        for k, v in q.items():
            args += ["--" + k, v]
        return args

    def test_csv_and_export(self):
        self.d.start()
        first, second = events(3000, 1, BASE), events(1500, 2, BASE)
        produce(self.broker.bootstrap, "pageviews", first)
        self.d.wait_archived(len(first))
        st = self.d.run_batch()
        self.assertGreater(st["batch"]["R"], 0)
        produce(self.broker.bootstrap, "pageviews", second)   # live, after R
        self.d.wait_archived(len(first) + len(second))
        payloads = first + second

        answers = {}
        for q in QUERIES:
            what = "query %s" % q
            s, body, hdr = self.http(q)
            self.assertEqual(s, 200, body)
            ans = json.loads(body)
            self.assertGreater(ans["watermark"]["batch_seq"], 0)
            self.assertGreater(ans["watermark"]["live_events"], 0)
            # the exact metrics against the model (the quantiles are sketches)
            exact = [m for m in (q.get("metrics") or ",".join(m["name"] for m in VIEW["metrics"])).split(",")
                     if m != "latency"]
            mq = dict(q, metrics=",".join(exact))
            mq.pop("quantiles", None)
            got = [dict(r, metrics={m: v for m, v in r["metrics"].items() if m != "latency"})
                   for r in ans["rows"]]
            assert_rows(got, expected(payloads, STREAM, VIEW, **mq), what)
            self.assertEqual(hdr["X-Lambdad-Batch-Seq"], str(ans["watermark"]["batch_seq"]))
            self.assertEqual(hdr["X-Lambdad-Live-Events"], str(ans["watermark"]["live_events"]))

            # format=csv: the same rows, numbers as the same text
            s, cbody, chdr = self.http(dict(q, format="csv"))
            self.assertEqual(s, 200, cbody)
            self.assertEqual(chdr["Content-Type"], "text/csv; charset=utf-8")
            self.assertEqual(chdr["X-Lambdad-Batch-Seq"], str(ans["watermark"]["batch_seq"]))
            self.assertEqual(chdr["X-Lambdad-Live-Events"], str(ans["watermark"]["live_events"]))
            self.assertEqual(chdr["X-Lambdad-Batch-At"], ans["watermark"]["batch_at"])
            got = list(csv.reader(io.StringIO(cbody.decode(), newline="")))
            self.assertEqual(got, csv_expected(raw_rows(body), q, VIEW), what)
            self.assertTrue(cbody.endswith(b"\r\n"))
            # a second time from the answer cache: the same bytes and headers
            s2, cbody2, chdr2 = self.http(dict(q, format="csv"))
            self.assertEqual((s2, cbody2, chdr2["X-Lambdad-Batch-Seq"]), (200, cbody, chdr["X-Lambdad-Batch-Seq"]))
            answers[json.dumps(q)] = (body, cbody)

            # export through the daemon: jsonl = the rows byte for byte, csv = format=csv
            rc, out, err = self.export("--view", "pages", "--format", "jsonl", *self.export_args(q))
            self.assertEqual(rc, 0, err)
            self.assertIn(b'"rows":[' + b",".join(out.splitlines()) + b'],"watermark"', body)
            self.assertEqual([json.loads(line) for line in out.splitlines()], ans["rows"])
            self.assertIn("from the running lambdad at http://127.0.0.1:%d" % self.d.port, err)
            self.assertIn("%d row(s) of view 'pages'" % len(ans["rows"]), err)
            rc, out, err = self.export("--view", "pages", *self.export_args(q),
                                       "--output", self.wd.file("out.csv"))
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, b"")
            # rows, not lines: values with line breaks are among them
            self.assertIn("%d row(s) of view 'pages'" % len(ans["rows"]), err)
            with open(self.wd.file("out.csv"), "rb") as f:
                self.assertEqual(f.read(), cbody)

        # the nasty values round-trip, null and the empty string apart
        s, cbody, _ = self.http({"granularity": "all", "group_by": "page", "metrics": "views",
                                 "format": "csv"})
        pages = [r[0] for r in csv.reader(io.StringIO(cbody.decode(), newline=""))][1:]
        self.assertEqual(sorted(pages), sorted(NASTY + [""]))
        self.assertTrue(cbody.startswith(b'page,views\r\n,'), cbody[:40])   # null first, unquoted
        self.assertIn(b'\r\n"",', cbody)
        self.assertIn(b'\r\n"say ""hi""",', cbody)
        self.assertIn(b'\r\n"two\nlines",', cbody)
        self.assertIn(b'\r\n" lead",', cbody)

        # errors: JSON from the API, a clear line from export
        s, body, hdr = self.http({"format": "xml"})
        self.assertEqual((s, json.loads(body)), (400, {"error": {"status": 400, "message":
                         "invalid format 'xml' (expected json or csv)"}}))
        self.assertEqual(hdr["Content-Type"], "application/json")
        rc, out, err = self.export("--view", "nope")
        self.assertEqual((rc, out, err), (1, b"", "lambdad export: unknown view 'nope' (HTTP 404)\n"))
        rc, out, err = self.export("--view", "pages", "--bogus", "1")
        self.assertEqual((rc, err), (1, "lambdad export: unknown parameter 'bogus' (HTTP 400)\n"))
        rc, _, err = self.export("--view", "pages", "--format", "xml")
        self.assertEqual((rc, err), (2, "lambdad export: unknown --format 'xml' (expected csv or jsonl)\n"))
        # a daemon runs on the archive, but not where this config says
        other = dict(self.d.cfg, http={"listen": "127.0.0.1:%d" % free_port()})
        with open(self.wd.file("other.json"), "w") as f:
            json.dump(other, f)
        rc, _, err = self.export("--view", "pages", config=self.wd.file("other.json"))
        self.assertEqual(rc, 1)
        self.assertIn("lambdad export: lambdad is running on %s (pid %d) but does not answer at "
                      "http://%s: " % (self.d.cfg["archive"]["path"], self.d.proc.pid,
                                       other["http"]["listen"]), err)

        # a lambdad holds this config's archive, but the one at its http.listen serves another
        import fcntl
        fake = dict(self.d.cfg, archive=dict(self.d.cfg["archive"], path=self.wd.file("fake.db")))
        with open(self.wd.file("fake.json"), "w") as f:
            json.dump(fake, f)
        with open(self.wd.file("fake.db-lock"), "w") as lock:
            lock.write("4242\n")
            lock.flush()
            fcntl.flock(lock, fcntl.LOCK_EX)
            rc, out, err = self.export("--view", "pages", config=self.wd.file("fake.json"))
        self.assertEqual((rc, out), (1, b""))
        self.assertEqual(err, "lambdad export: the lambdad at http://127.0.0.1:%d serves archive %s, "
                         "not %s (which lambdad pid 4242 holds); not exporting from the wrong one\n"
                         % (self.d.port, self.d.cfg["archive"]["path"], self.wd.file("fake.db")))

        # from the files once no daemon runs: the same bytes
        self.assertEqual(self.d.stop(), 0)
        for q in QUERIES:
            body, cbody = answers[json.dumps(q)]
            rc, out, err = self.export("--view", "pages", "--format", "jsonl", *self.export_args(q))
            self.assertEqual(rc, 0, err)
            self.assertIn("from the files (no lambdad runs on %s)" % self.d.cfg["archive"]["path"], err)
            wm = json.loads(body)["watermark"]
            self.assertIn("(batch_seq %d, live_events %d)" % (wm["batch_seq"], wm["live_events"]), err)
            self.assertIn(b'"rows":[' + b",".join(out.splitlines()) + b'],"watermark"', body)
            self.assertEqual(len(out.splitlines()), len(json.loads(body)["rows"]))
            rc, out, err = self.export("--view", "pages", *self.export_args(q))
            self.assertEqual((rc, out), (0, cbody), err)
        rc, out, err = self.export("--view", "nope")
        self.assertEqual((rc, err), (1, "lambdad export: unknown view 'nope'\n"))
        rc, out, err = self.export("--view", "pages", "--granularity", "second")
        self.assertEqual((rc, err), (1, "lambdad export: granularity 'second' is finer than the "
                                        "view's 'minute'\n"))
        # an archive that cannot be opened (fake.json's, no daemon holds its lock now)
        with open(self.wd.file("fake.db"), "w") as f:
            f.write("not a database " * 20)
        rc, out, err = self.export("--view", "pages", config=self.wd.file("fake.json"))
        self.assertEqual((rc, out, err), (1, b"", "lambdad export: cannot open archive %s: %s is "
                                          "not an SQLite database\n"
                                          % (self.wd.file("fake.db"), self.wd.file("fake.db"))))

        # lambdad-archive dump: [from, to) by event time, across the two days
        lo, hi = BASE + DAY - 3600, BASE + DAY + 1800
        r = subprocess.run([ARCHTOOL, "dump", "--stream", "pageviews", "--from", str(lo), "--to",
                            "2025-11-24T00:30:00Z", self.d.cfg["archive"]["path"]],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = sorted(p for p in payloads if lo <= json.loads(p)["ts"] < hi)
        self.assertGreater(len(want), 0)
        self.assertEqual(sorted(r.stdout.decode().splitlines()), want)
        r = subprocess.run([ARCHTOOL, "dump", "--from", str(hi * 1000), self.d.cfg["archive"]["path"]],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.decode().splitlines()),
                         sorted(p for p in payloads if json.loads(p)["ts"] >= hi))


if __name__ == "__main__":
    unittest.main()
