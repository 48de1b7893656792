"""Operations over HTTP against the real daemon (issue #4): /metrics passes
`promtool check metrics` and its values move as events are produced;
bearer-token auth (protect admin and all); HTTPS with a throwaway
certificate; CORS; each http.limits entry hit once with its exact answer;
a slowloris client does not block other clients, and idle connections are
closed after connection_timeout_s.

promtool (Debian package "prometheus") and openssl must be installed: the
tests fail, not skip, without them (scripts/deps.sh installs both)."""
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import make_cert, need, LAMBDAD, Daemon, Devbroker, Workdir, produce, stop_all, wait_until  # noqa: E402

VIEW = {"name": "by_page", "stream": "pageviews", "granularity": "minute",
        "dimensions": ["page"], "metrics": [{"name": "views", "type": "count"}]}
T0 = 1763892000


def stream(topic):
    return [{"name": "pageviews", "topic": topic, "time_field": "ts"}]


def events(n, pages=None, start=T0):
    return [json.dumps({"ts": start + i, "page": "/p%d" % (i % (pages or n))}) for i in range(n)]


def err(status, msg):
    return {"error": {"status": status, "message": msg}}


def call(port, method, path, body=None, headers=None, source=None, tls_ctx=None, conn=None):
    """One request; returns (status, headers, body bytes). Uses conn when
    given (keep-alive), else a new connection that is closed after."""
    own = conn is None
    if own:
        if tls_ctx:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=20, context=tls_ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20,
                                              source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, r.headers, data
    finally:
        if own:
            conn.close()


def jcall(*args, **kw):
    s, h, b = call(*args, **kw)
    return s, h, json.loads(b) if b else None


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, ((label, value), ...)): float} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.promtool = need("promtool", "prometheus")
        cls.wd = Workdir("opsmetrics")
        cls.broker = Devbroker(["mtopic:2"])
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=stream("mtopic"), views=[VIEW],
                       extra={"kafka": {"group_id": "ops-metrics"}}).start()

    @classmethod
    def tearDownClass(cls):
        stop_all(cls)

    def scrape(self):
        s, h, body = call(self.d.port, "GET", "/metrics")
        self.assertEqual(s, 200)
        self.assertEqual(h["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        text = body.decode()
        r = subprocess.run([self.promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), "promtool check metrics")
        return parse_metrics(text)

    def test_values_move(self):
        before = self.scrape()
        for name in ("lambdad_events_consumed_total", "lambdad_events_archived_total",
                     "lambdad_events_rejected_total", "lambdad_archive_commits_total",
                     "lambdad_archive_size_bytes", "lambdad_live_events", "lambdad_ready",
                     "lambdad_http_requests_in_flight", "lambdad_http_connections",
                     "lambdad_batch_seconds_since_success"):
            self.assertIsNotNone(val(before, name), name)
        self.assertEqual(val(before, "lambdad_ready"), 1)
        self.assertEqual(val(before, "lambdad_build_info", version="0.1.0"), 1)
        self.assertEqual(val(before, "lambdad_http_requests_in_flight"), 1)   # this scrape

        good = events(30, pages=3)
        bad = ["not json", "[1]", '{"page":"/x"}']
        produce(self.broker.bootstrap, "mtopic", good + bad)
        self.d.wait_archived(30, 3)
        q = "/v1/views/by_page/query?granularity=all&group_by=page"
        for _ in range(3):
            self.assertEqual(call(self.d.port, "GET", q)[0], 200)
        self.assertEqual(call(self.d.port, "GET", "/nope")[0], 404)
        self.assertEqual(call(self.d.port, "GET", q + "&bogus=1")[0], 400)

        def caught_up():
            m = self.scrape()
            lags = [v for (n, _), v in m.items() if n == "lambdad_kafka_consumer_lag_messages"]
            return m if len(lags) == 2 and all(v == 0 for v in lags) else None
        after = wait_until(caught_up, 30, "consumer lag 0 on both partitions")

        def delta(name, **labels):
            return (val(after, name, **labels) or 0) - (val(before, name, **labels) or 0)
        self.assertEqual(delta("lambdad_events_consumed_total"), 33)
        self.assertEqual(delta("lambdad_events_archived_total"), 30)
        self.assertEqual(delta("lambdad_events_rejected_total"), 3)
        self.assertGreaterEqual(delta("lambdad_archive_commits_total"), 1)
        self.assertEqual(val(after, "lambdad_live_events") + val(after, "lambdad_pending_events"), 30)
        self.assertGreater(val(after, "lambdad_archive_size_bytes"), 0)
        self.assertGreater(val(after, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(val(after, "process_open_fds"), 3)
        self.assertGreater(val(after, "process_max_fds"), val(after, "process_open_fds"))
        self.assertLessEqual(val(after, "process_start_time_seconds"), time.time())
        offsets = sum(v for (n, _), v in after.items() if n == "lambdad_kafka_next_offset")
        self.assertEqual(offsets, 33)
        hwm = sum(v for (n, _), v in after.items() if n == "lambdad_kafka_high_watermark")
        self.assertEqual(hwm, 33)
        self.assertEqual(val(after, "lambdad_view_available", view="by_page"), 1)
        rows = sum(val(after, "lambdad_view_rows", view="by_page", layer=layer)
                   for layer in ("batch", "pending", "live"))
        self.assertGreaterEqual(rows, 3)
        # HTTP: by route pattern (not the raw path) and status
        route = "/v1/views/{view}/query"
        self.assertEqual(delta("lambdad_http_requests_total", route=route, code="200"), 3)
        self.assertEqual(delta("lambdad_http_requests_total", route=route, code="400"), 1)
        self.assertEqual(delta("lambdad_http_requests_total", route="other", code="404"), 1)
        self.assertEqual(delta("lambdad_http_request_duration_seconds_count", route=route), 4)
        self.assertEqual(val(after, "lambdad_http_request_duration_seconds_bucket", route=route,
                             le="+Inf"), val(after, "lambdad_http_request_duration_seconds_count",
                                             route=route))
        self.assertGreater(delta("lambdad_http_request_duration_seconds_sum", route=route), 0)
        self.assertGreaterEqual(delta("lambdad_http_requests_total", route="/metrics", code="200"), 1)

    def test_batch_metrics_after_a_run(self):
        s, h, b = call(self.d.port, "POST", "/v1/admin/recompute")
        self.assertEqual(s, 202, b)

        def ran():
            m = self.scrape()
            return m if val(m, "lambdad_batch_runs_total") >= 1 and \
                val(m, "lambdad_batch_running") == 0 else None
        m = wait_until(ran, 30, "a batch run")
        self.assertGreater(val(m, "lambdad_batch_last_success_timestamp_seconds"), 0)
        self.assertLess(val(m, "lambdad_batch_seconds_since_success"), 60)
        self.assertEqual(val(m, "lambdad_batch_failures_total"), 0)


class AuthAdminTest(unittest.TestCase):
    """protect = admin (the default): only /v1/admin/* needs the token."""

    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("opsauth")
        with open(cls.wd.file("token"), "w") as f:
            f.write("admin-T0ken\n")
        cls.broker = Devbroker(["atopic:1"])
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=stream("atopic"), views=[VIEW],
                       extra={"http": {"auth": {"token_file": cls.wd.file("token")}}}).start()

    @classmethod
    def tearDownClass(cls):
        stop_all(cls)

    def test_admin_needs_the_token(self):
        p = self.d.port
        self.assertEqual(jcall(p, "GET", "/v1/views")[0], 200)
        self.assertEqual(call(p, "GET", "/metrics")[0], 200)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer admin-T0ke"},
                        {"Authorization": "Basic YWRtaW4tVDBrZW4="}, {"Authorization": "admin-T0ken"}):
            s, h, b = jcall(p, "POST", "/v1/admin/recompute", headers=headers)
            self.assertEqual((s, b), (401, err(401, "missing or invalid bearer token")), headers)
            self.assertEqual(h["WWW-Authenticate"], "Bearer")
            self.assertEqual(h["Content-Type"], "application/json")
        s, h, b = jcall(p, "POST", "/v1/admin/recompute", headers={"Authorization": "Bearer admin-T0ken"})
        self.assertEqual((s, b), (202, {"status": "accepted", "view": None, "full": False}))
        s, h, b = jcall(p, "POST", "/v1/admin/recompute?view=by_page",
                        headers={"Authorization": "bearer admin-T0ken"})
        self.assertEqual((s, b), (202, {"status": "accepted", "view": "by_page", "full": True}))
        # below /v1/admin, even a route that does not exist needs the token first
        self.assertEqual(jcall(p, "GET", "/v1/admin/nothing")[0], 401)
        self.assertEqual(jcall(p, "GET", "/v1/admin/nothing",
                               headers={"Authorization": "Bearer admin-T0ken"})[0], 404)


class SecureTest(unittest.TestCase):
    """HTTPS, protect = all, and CORS for a dashboard origin, together."""
    ORIGIN = "https://dash.example.com"

    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("opstls")
        cls.cert, key = make_cert(cls.wd)
        with open(cls.wd.file("token"), "w") as f:
            f.write("all-T0ken\r\n")
        cls.ctx = ssl.create_default_context(cafile=cls.cert)
        cls.broker = Devbroker(["stopic:1"])
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=stream("stopic"), views=[VIEW],
                       extra={"http": {"auth": {"token_file": cls.wd.file("token"), "protect": "all"},
                                       "tls": {"cert_file": cls.cert, "key_file": key},
                                       "cors_origin": cls.ORIGIN}}).start(wait_ready=False)
        wait_until(lambda: cls.get("/readyz")[0] == 200, 30, "lambdad /readyz over https")
        produce(cls.broker.bootstrap, "stopic", events(5))

    @classmethod
    def tearDownClass(cls):
        stop_all(cls)

    @classmethod
    def get(cls, path, headers=None, method="GET"):
        return jcall(cls.d.port, method, path, headers=headers, tls_ctx=cls.ctx)

    AUTH = {"Authorization": "Bearer all-T0ken"}

    def test_https_query_with_token(self):
        def five():
            s, h, b = self.get("/v1/views/by_page/query?granularity=all", headers=self.AUTH)
            self.assertEqual(s, 200, b)
            return b["rows"] and b["rows"][0]["metrics"]["views"] == 5
        wait_until(five, 30, "5 events queryable over https")

    def test_import_and_export_through_https_with_token(self):
        """lambdad import and export find this daemon over HTTPS, trusting
        its own certificate and sending the config's token."""
        def five():
            s, h, b = self.get("/v1/views/by_page/query?granularity=all", headers=self.AUTH)
            return s == 200 and b["rows"] and b["rows"][0]["metrics"]["views"] == 5 and b["rows"]
        rows = wait_until(five, 30, "5 events queryable over https")
        r = subprocess.run([LAMBDAD, "export", "-c", self.d.config_path, "--view", "by_page",
                            "--granularity", "all", "--format", "jsonl"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([json.loads(line) for line in r.stdout.splitlines()], rows)
        self.assertIn("from the running lambdad at https://127.0.0.1:%d" % self.d.port, r.stderr)
        # a line without its time: rejected, so the view's numbers stay as they are
        path = self.wd.file("one.jsonl")
        with open(path, "w") as f:
            f.write('{"page": "/x"}\n')
        r = subprocess.run([LAMBDAD, "import", "-c", self.d.config_path, "--stream", "pageviews",
                            "-q", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^%s: imported 0, rejected 1, skipped 0 \(already imported\) "
                         % re.escape(path))

    def test_protect_all(self):
        for path in ("/v1/views", "/v1/status", "/metrics", "/v1/views/by_page/query", "/nope"):
            for headers in ({}, {"Authorization": "Bearer all-T0ken2"}):
                s, h, b = self.get(path, headers=headers)
                self.assertEqual((s, b), (401, err(401, "missing or invalid bearer token")), path)
                self.assertEqual(h["WWW-Authenticate"], "Bearer")
        s, h, b = self.get("/v1/admin/recompute", headers={}, method="POST")
        self.assertEqual(s, 401)
        self.assertEqual(self.get("/v1/views", headers=self.AUTH)[0], 200)
        self.assertEqual(self.get("/v1/admin/recompute", headers=self.AUTH, method="POST")[0], 202)
        # probes need no token
        self.assertEqual(self.get("/healthz")[:3:2], (200, {"status": "ok"}))
        self.assertEqual(self.get("/readyz")[0], 200)

    def test_plain_http_to_the_tls_port_gets_no_answer(self):
        with socket.create_connection(("127.0.0.1", self.d.port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                got = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                got = b""
        self.assertFalse(got.startswith(b"HTTP/1.1 200"), got)

    def test_cors(self):
        s, h, b = self.get("/v1/views", headers=dict(self.AUTH, Origin=self.ORIGIN))
        self.assertEqual(s, 200)
        self.assertEqual(h["Access-Control-Allow-Origin"], self.ORIGIN)
        self.assertEqual(h["Vary"], "Origin")
        # errors carry it too, so the dashboard can read them
        s, h, b = self.get("/v1/views", headers={"Origin": self.ORIGIN})
        self.assertEqual(s, 401)
        self.assertEqual(h["Access-Control-Allow-Origin"], self.ORIGIN)
        # the preflight: no token needed, no body
        s, h, body = call(self.d.port, "OPTIONS", "/v1/views/by_page/query", tls_ctx=self.ctx,
                          headers={"Origin": self.ORIGIN, "Access-Control-Request-Method": "GET",
                                   "Access-Control-Request-Headers": "authorization"})
        self.assertEqual((s, body), (204, b""))
        self.assertEqual(h["Access-Control-Allow-Origin"], self.ORIGIN)
        self.assertEqual(h["Access-Control-Allow-Methods"], "GET, HEAD, POST, OPTIONS")
        self.assertEqual(h["Access-Control-Allow-Headers"], "Authorization, Content-Type")
        self.assertEqual(h["Access-Control-Max-Age"], "600")


class LimitsTest(unittest.TestCase):
    LIMITS = {"max_body_bytes": 1000, "max_query_bytes": 100, "max_rows": 5,
              "max_connections": 20, "max_connections_per_ip": 4}

    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("opslimits")
        cls.broker = Devbroker(["ltopic:1"])
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=stream("ltopic"), views=[VIEW],
                       extra={"http": {"limits": cls.LIMITS}}).start()
        produce(cls.broker.bootstrap, "ltopic", events(10))   # 10 pages
        cls.d.wait_archived(10)

    @classmethod
    def tearDownClass(cls):
        stop_all(cls)

    def test_body(self):
        s, h, b = jcall(self.d.port, "POST", "/v1/views", body=b"x" * 1001)
        self.assertEqual((s, b), (413, err(413, "request body too large (limit 1000 bytes)")))
        s, h, b = jcall(self.d.port, "POST", "/v1/views", body=b"x" * 1000)
        self.assertEqual((s, b), (405, err(405, "method POST not allowed on /v1/views")))

    def test_query_string(self):
        q = "/v1/views/by_page/query?x="
        s, h, b = jcall(self.d.port, "GET", q + "a" * 99)   # 101 bytes after '?'
        self.assertEqual((s, b), (413, err(413, "query string too long (limit 100 bytes)")))
        s, h, b = jcall(self.d.port, "GET", q + "a" * 98)   # 100: read, then judged
        self.assertEqual((s, b), (400, err(400, "unknown parameter 'x'")))

    def test_rows(self):
        q = "/v1/views/by_page/query?granularity=all&group_by=page"
        msg = ("answer has more than 5 rows (http.limits.max_rows); add a limit or narrow the "
               "query (from/to, filter, group_by or a coarser granularity)")
        self.assertEqual(jcall(self.d.port, "GET", q)[::2], (413, err(413, msg)))
        self.assertEqual(jcall(self.d.port, "GET", q + "&limit=6")[::2], (413, err(413, msg)))
        s, h, b = jcall(self.d.port, "GET", q + "&limit=5&order_by=views")
        self.assertEqual((s, len(b["rows"])), (200, 5))
        s, h, b = jcall(self.d.port, "GET", q + "&filter=page:/p1,page:/p2")
        self.assertEqual((s, len(b["rows"])), (200, 2))

    def hold(self, source, n):
        """n keep-alive connections from source, each answered once."""
        conns = []
        for _ in range(n):
            c = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=20,
                                           source_address=(source, 0))
            conns.append(c)
            self.assertEqual(call(self.d.port, "GET", "/healthz", conn=c)[0], 200)
        return conns

    def test_connections_per_ip(self):
        self.wait_quiet()
        held = self.hold("127.0.0.5", 4)
        try:
            s, h, b = jcall(self.d.port, "GET", "/healthz", source="127.0.0.5")
            self.assertEqual((s, b), (429, err(429, "too many open connections from your address "
                                                    "(http.limits.max_connections_per_ip = 4)")))
            self.assertEqual(h["Retry-After"], "1")
            self.assertEqual(h["Connection"], "close")
            # another address is served meanwhile
            self.assertEqual(jcall(self.d.port, "GET", "/healthz", source="127.0.0.6")[0], 200)
        finally:
            held.pop().close()
        try:
            # one closed: the next one from that address is served again
            wait_until(lambda: call(self.d.port, "GET", "/healthz", source="127.0.0.5")[0] == 200,
                       10, "a connection slot for 127.0.0.5")
        finally:
            for c in held:
                c.close()

    def wait_quiet(self):
        """Until the server counts no connection but the scrape's own."""
        def quiet():
            m = parse_metrics(call(self.d.port, "GET", "/metrics")[2].decode())
            return val(m, "lambdad_http_connections") == 1
        wait_until(quiet, 10, "closed connections to be counted out")

    def test_connections_total(self):
        self.wait_quiet()
        held = []
        try:
            for i in range(5):   # 5 addresses x 4 = 20, each within its own limit
                held += self.hold("127.0.1.%d" % (i + 1), 4)
            s, h, b = jcall(self.d.port, "GET", "/healthz", source="127.0.2.1")
            self.assertEqual((s, b), (503, err(503, "too many open connections "
                                                    "(http.limits.max_connections = 20)")))
            self.assertEqual(h["Retry-After"], "1")
        finally:
            for c in held:
                c.close()
        wait_until(lambda: call(self.d.port, "GET", "/healthz")[0] == 200, 10, "connections freed")
        m = parse_metrics(call(self.d.port, "GET", "/metrics")[2].decode())
        self.assertGreaterEqual(val(m, "lambdad_http_connections_refused_total",
                                    limit="max_connections"), 1)


class SlowClientsTest(unittest.TestCase):
    """Many half-sent requests, kept alive by a byte now and then, from two
    addresses: other clients are answered meanwhile; idle ones are closed
    after connection_timeout_s. Bounds are generous: nothing times speed."""
    TIMEOUT_S = 3

    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("opsslow")
        cls.broker = Devbroker(["wtopic:1"])
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=stream("wtopic"), views=[VIEW],
                       extra={"http": {"threads": 2,
                                       "limits": {"connection_timeout_s": cls.TIMEOUT_S}}}).start()
        produce(cls.broker.bootstrap, "wtopic", events(10))
        cls.d.wait_archived(10)

    @classmethod
    def tearDownClass(cls):
        stop_all(cls)

    def test_slowloris_does_not_block_others(self):
        slow = []
        stop = threading.Event()
        try:
            for source in ("127.0.0.2", "127.0.0.3"):
                for _ in range(60):   # within the default 64 per address
                    s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10,
                                                 source_address=(source, 0))
                    s.sendall(b"GET /v1/views HTTP/1.1\r\nHost: x\r\n")
                    slow.append(s)

            def drip():
                n = 0
                while not stop.wait(1.0):
                    n += 1
                    for s in slow:
                        try:
                            s.sendall(b"X-Slow-%d: y\r\n" % n)
                        except OSError:
                            pass
            dripper = threading.Thread(target=drip, daemon=True)
            dripper.start()
            t0 = time.monotonic()
            q = "/v1/views/by_page/query?granularity=all"
            deadline = t0 + 2 * self.TIMEOUT_S + 2   # past the idle timeout: dripping keeps them
            answered = 0
            while time.monotonic() < deadline or answered < 50:
                s, h, b = jcall(self.d.port, "GET", q)
                self.assertEqual((s, b["rows"][0]["metrics"]["views"]), (200, 10))
                answered += 1
                time.sleep(0.01)
            took = time.monotonic() - t0
            print("%d answers in %.1f s next to %d slow clients" % (answered, took, len(slow)))
            self.assertLess(took, 60)
            # the dripping clients are still connected: a header line is accepted
            alive = 0
            for s in slow:
                try:
                    s.sendall(b"X-Still: 1\r\n")
                    alive += 1
                except OSError:
                    pass
            self.assertGreater(alive, 100)
        finally:
            stop.set()
        # once they stop sending, each is closed after the idle timeout
        t0 = time.monotonic()
        for s in slow:
            s.settimeout(max(1.0, 30 - (time.monotonic() - t0)))
            try:
                got = s.recv(4096)
            except ConnectionResetError:
                got = b""
            except socket.timeout:
                self.fail("a slow client was not closed within 30 s")
            self.assertEqual(got, b"")   # closed without an answer: the request never ended
            s.close()
        took = time.monotonic() - t0
        print("all %d slow clients closed %.1f s after they went quiet" % (len(slow), took))
        self.assertGreaterEqual(took, self.TIMEOUT_S - 1.5)

    def test_idle_connection_is_closed(self):
        with socket.create_connection(("127.0.0.1", self.d.port), timeout=30,
                                      source_address=("127.0.0.4", 0)) as s:
            t0 = time.monotonic()
            self.assertEqual(s.recv(4096), b"")
            took = time.monotonic() - t0
        self.assertGreaterEqual(took, self.TIMEOUT_S - 1)
        self.assertLess(took, 30)


if __name__ == "__main__":
    unittest.main(verbosity=2)
