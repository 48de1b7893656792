"""End to end: lambdad import of history files.

History is written as JSON lines and as the CSV pandas' DataFrame.to_csv()
writes (an unnamed index column first, floats where a column has missing
values, QUOTE_MINIMAL quoting, strings with commas, quotes and newlines),
plain, gzip'd and zstd'd. Every answer equals the independent model
(tests/e2e/model.py) of exactly the accepted events:
- imported with no daemon running (the command writes the archive under
  its lock), then seen by the daemon after its start;
- imported through the running daemon (POST /v1/admin/import) while Kafka
  events flow;
- imported again: everything skipped, nothing changes;
- malformed records are rejects naming file and line;
- killed (SIGKILL at the failpoint after the first transaction of an
  import, in the command and in the daemon), then imported again: every
  record counted exactly once;
- with http.auth the command sends the config's token, and it refuses a
  server at the config's address that serves another archive."""
import csv
import gzip
import http.server
import io
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import LAMBDAD, Daemon, Devbroker, Workdir, produce  # noqa: E402
from model import assert_rows, expected  # noqa: E402

T0 = 1763892000
STREAM = {"name": "pv", "topic": "pv", "time_field": "ts", "time_format": "epoch_s",
          "fields": {"section": "split_part(page, '/', 2)"}}
VIEW = {"name": "by_page", "stream": "pv", "granularity": "hour",
        "dimensions": ["page", "country"],
        "metrics": [{"name": "n", "type": "count"},
                    {"name": "bytes", "type": "sum", "field": "bytes"},
                    {"name": "top", "type": "max", "field": "bytes"}]}
BY_SECTION = {"name": "by_section", "stream": "pv", "granularity": "day",
              "dimensions": ["section"], "metrics": [{"name": "n", "type": "count"}]}
QUERIES = [("by_page", {"granularity": "all", "group_by": "page,country"}),
           ("by_page", {"granularity": "day", "group_by": "country"}),
           ("by_section", {"granularity": "all", "group_by": "section"})]
PAGES = ["/shop/cart", "/blog/a,b", "/say \"hi\"", "/multi\nline", "/"]


def events(n, start, seed, step=61):
    """Event dicts; bytes missing for some (pandas then writes the column
    as floats: 12.0)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        e = {"ts": start + i * step, "page": rnd.choice(PAGES),
             "country": rnd.choice(["DE", "FR", "US"])}
        if rnd.random() < 0.85:
            e["bytes"] = float(rnd.randrange(0, 5000))
        out.append(e)
    return out


def to_jsonl(evs):
    return [json.dumps(e) for e in evs]


def pandas_csv(evs, bad_time_rows=(), lines=None):
    """What pandas.DataFrame(evs).to_csv() writes: the index as a first
    column without a name, NaN as an empty field, floats as repr().
    lines (a dict) gets the line each row starts on."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ["ts", "page", "country", "bytes"]
    w.writerow([""] + cols)
    for i, e in enumerate(evs):
        row = [str(i)]
        for c in cols:
            v = e.get(c)
            row.append("" if v is None else repr(v) if isinstance(v, float) else str(v))
        if i in bad_time_rows:
            row[1] = "yesterday"
        if lines is not None:
            lines[i] = buf.getvalue().count("\n") + 1
        w.writerow(row)
    return buf.getvalue()


def model_payloads(evs, drop=()):
    """The JSON text of each accepted CSV row, as the model reads it: a
    missing value is null."""
    return [json.dumps({k: e.get(k) for k in ("ts", "page", "country", "bytes")})
            for i, e in enumerate(evs) if i not in drop]


def status_with_token(daemon, token):
    req = urllib.request.Request("http://127.0.0.1:%d/v1/status" % daemon.port,
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def derive(obj, ts):
    page = obj.get("page")
    parts = page.split("/") if isinstance(page, str) else []
    return dict(obj, section=parts[1] if len(parts) >= 2 else ("" if parts else None))


class ImportTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("import")
        self.broker = Devbroker(["pv:2"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM],
                        views=[VIEW, BY_SECTION])

    def tearDown(self):
        self.d.stop()
        self.broker.stop()
        self.wd.cleanup()

    def write(self, name, text, opener=open):
        path = self.wd.file(name)
        with opener(path, "wb") as f:
            f.write(text.encode())
        return path

    def run_import(self, *files, env=None, extra=()):
        return subprocess.run([LAMBDAD, "import", "-c", self.d.config_path, "--stream", "pv",
                               *extra, *files], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, **(env or {})))

    def summary(self, r, name):
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"^%s: imported (\d+), rejected (\d+), skipped (\d+) \(already imported\) "
                      r"in [0-9.]+ s \([0-9]+ events/s\)$" % re.escape(name), r.stdout, re.M)
        self.assertTrue(m, r.stdout)
        return tuple(int(x) for x in m.groups())

    def check(self, payloads, what):
        views = {"by_page": VIEW, "by_section": BY_SECTION}
        for view, q in QUERIES:
            got = self.d.query(view, **q)["rows"]
            want = expected(payloads, STREAM, views[view], derive=derive, **q)
            assert_rows(got, want, "%s: %s %s" % (what, view, q))

    def rejects(self):
        db = sqlite3.connect("file:%s?mode=ro" % self.d.cfg["archive"]["path"], uri=True)
        try:
            return db.execute("SELECT reason, detail FROM rejects ORDER BY id").fetchall()
        finally:
            db.close()

    maxDiff = None

    def test_import(self):
        d = self.d
        # -- without a daemon: JSON lines (2 malformed lines, a blank one)
        # and a gzip'd pandas CSV (one row with a bad time); the first
        # import is killed after its first transaction and resumed
        ev1 = events(1500, T0, seed=1)
        lines = to_jsonl(ev1)
        lines[10:10] = ["{\"ts\": oops}"]
        lines[20:20] = [""]
        lines[700:700] = ["[1, 2]"]
        jl = self.write("history.jsonl", "\n".join(lines) + "\n")
        ev2 = events(1200, T0 + 86400 * 3, seed=2)
        line_of = {}
        gz = self.write("frame.csv.gz", pandas_csv(ev2, bad_time_rows={5}, lines=line_of),
                        gzip.open)
        r = self.run_import(jl, env={"LAMBDAD_FAILPOINT": "import_after_commit"},
                            extra=["--commit-every", "400", "-q"])
        self.assertEqual(r.returncode, -9, r.stderr)
        r = self.run_import(jl, gz, extra=["--commit-every", "400"])
        # (the first 400 records, one of them malformed, were archived
        # before the kill)
        self.assertEqual(self.summary(r, jl), (1101, 1, 400))
        self.assertEqual(self.summary(r, gz), (1199, 1, 0))
        self.assertEqual(self.summary(r, "total"), (2300, 2, 400))
        accepted = to_jsonl(ev1) + model_payloads(ev2, drop={5})

        d.start()
        self.assertEqual(d.status()["archive"]["events"], 2700 - 1)
        self.check(accepted, "imported before the start")
        d.run_batch()
        self.check(accepted, "after a batch run")

        # rejects name the file and the line
        self.assertEqual(self.rejects(), [
            ("invalid_json", "%s:11: unexpected character 'o' at byte 7" % jl),
            ("not_an_object", "%s:701: top-level value is an array" % jl),
            ("bad_time", "%s:%d: field 'ts' is not a valid epoch_s time" % (gz, line_of[5])),
        ])

        # -- through the daemon, while Kafka events flow: a zstd'd CSV
        live = to_jsonl(events(800, T0 + 86400, seed=3, step=7))
        ev3 = events(900, T0 + 3600 * 5, seed=4, step=13)
        plain = self.write("more.csv", pandas_csv(ev3))
        zst = plain + ".zst"
        subprocess.run(["zstd", "-q", "-f", "--rm", plain, "-o", zst], check=True)
        produce(self.broker.bootstrap, "pv", live[:400])
        r = self.run_import(zst)
        produce(self.broker.bootstrap, "pv", live[400:])
        self.assertEqual(self.summary(r, zst), (900, 0, 0))
        accepted += live + model_payloads(ev3)
        d.wait_archived(len(accepted), rejected=3)
        self.check(accepted, "imported into the running daemon")
        d.run_batch()
        self.check(accepted, "after a batch run")

        # -- again: nothing changes
        r = self.run_import(jl, gz, zst)
        self.assertEqual(self.summary(r, "total"), (0, 0, 1502 + 1200 + 900))
        self.assertEqual(d.status()["archive"]["events"], len(accepted))
        self.check(accepted, "after importing everything again")

        # -- the daemon killed after the first transaction of an import
        ev4 = events(1000, T0 + 86400 * 5, seed=5)
        j4 = self.write("late.ndjson", "\n".join(to_jsonl(ev4)))
        d.stop()
        d.start(env={"LAMBDAD_FAILPOINT": "import_after_commit"})
        r = self.run_import(j4, extra=["--commit-every", "300"])
        self.assertEqual(r.returncode, 1)
        d.proc.wait(timeout=30)
        self.assertEqual(d.proc.returncode, -9)
        d.log.close()
        d.start()
        r = self.run_import(j4)
        self.assertEqual(self.summary(r, j4), (700, 0, 300))
        accepted += to_jsonl(ev4)
        self.assertEqual(d.status()["archive"]["events"], len(accepted))
        self.check(accepted, "after kill -9 during an import and importing again")
        d.run_batch()
        self.check(accepted, "after a batch run")

    def test_http_errors(self):
        d = self.d
        d.start()
        s, body, _ = d.request("POST", "/v1/admin/import?stream=nope&format=jsonl", b"{}")
        self.assertEqual((s, body), (404, {"error": {"status": 404,
                                                      "message": "unknown stream 'nope'"}}))
        s, body, _ = d.request("POST", "/v1/admin/import?stream=pv&format=xml", b"{}")
        self.assertEqual((s, body["error"]["message"]), (400, "format must be jsonl or csv"))
        s, body, _ = d.request("POST", "/v1/admin/import?stream=pv&format=csv&name=x.csv",
                               b"ts,a\n1,\"open\n")
        self.assertEqual((s, body["error"]["message"]),
                         (400, "x.csv:2: a quoted field is not closed before the end of the file"))
        s, body, _ = d.request("GET", "/v1/admin/import?stream=pv&format=csv")
        self.assertEqual(s, 405)
        # a body far over http.limits.max_body_bytes is taken (it goes to disk)
        big = "\n".join(to_jsonl(events(30000, T0, seed=9))).encode()
        self.assertGreater(len(big), 1 << 20)
        s, body, _ = d.request("POST", "/v1/admin/import?stream=pv&format=jsonl&name=big.jsonl",
                               big)
        self.assertEqual((s, body["imported"], body["skipped"]), (200, 30000, 0))
        self.assertEqual(body["records"], 30000)
        self.assertRegex(body["hash"], "^[0-9a-f]{32}$")

    def test_auth_and_the_right_daemon(self):
        """With http.auth (protect all: /v1/status too) the command sends
        the config's token; and it refuses to send a file to a server that
        serves another archive than the one whose lock is held."""
        d = self.d
        with open(self.wd.file("token"), "w") as f:
            f.write("imp-T0ken\n")
        d.rewrite_config(http=dict(d.cfg["http"], auth={"token_file": self.wd.file("token"),
                                                        "protect": "all"}))
        d.start()
        s, body, _ = d.request("POST", "/v1/admin/import?stream=pv&format=jsonl", b"{}")
        self.assertEqual(s, 401)
        path = self.write("a.jsonl", "\n".join(to_jsonl(events(50, T0, seed=7))))
        self.assertEqual(self.summary(self.run_import(path), path), (50, 0, 0))
        self.assertEqual(status_with_token(d, "imp-T0ken")["archive"]["events"], 50)

        # a config naming this archive but another server's address
        other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtherArchive)
        threading.Thread(target=other.serve_forever, daemon=True).start()
        try:
            cfg = dict(d.cfg, http={"listen": "127.0.0.1:%d" % other.server_address[1]})
            wrong = self.wd.file("wrong.json")
            with open(wrong, "w") as f:
                json.dump(cfg, f)
            r = subprocess.run([LAMBDAD, "import", "-c", wrong, "--stream", "pv", path],
                               capture_output=True, text=True, timeout=60)
        finally:
            other.shutdown()
            other.server_close()
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "lambdad import: the lambdad at http://127.0.0.1:%d serves "
                         "archive /elsewhere/archive.db, not %s (which lambdad pid %d holds); "
                         "refusing to import into the wrong one\n" % (
                             other.server_address[1], d.cfg["archive"]["path"], d.proc.pid))


class OtherArchive(http.server.BaseHTTPRequestHandler):
    """A server whose /v1/status names another archive."""

    def do_GET(self):
        body = json.dumps({"archive": {"path": "/elsewhere/archive.db"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


if __name__ == "__main__":
    unittest.main()
