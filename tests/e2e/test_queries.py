"""Queries on the query pool against the real daemon: while more heavy
queries run than there are HTTP threads, /healthz, /readyz, /metrics and
/v1/status keep answering; a query past http.limits.query_timeout_ms gets
its exact 503; Cache-Control: no-cache computes a cached question afresh
(a "miss"); the answer cache and the pool show in /metrics and /v1/status.

A view of ~120k rows (one per event: second granularity, by user and
page) makes the heavy queries. Nothing asserts on latency."""
import http.client
import json
import os
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GEN, Daemon, Devbroker, Workdir, produce, spawn, wait_until  # noqa: E402

N = 120000
BASE = 1763856000   # 2025-11-23T00:00:00Z
STREAM = [{"name": "pageviews", "topic": "pageviews", "time_field": "ts"}]
VIEW = {"name": "by_user", "stream": "pageviews", "granularity": "second",
        "dimensions": ["user", "page"], "metrics": [{"name": "views", "type": "count"}]}
HEAVY = "/v1/views/by_user/query?granularity=all&group_by=user&order_by=views&limit=10"
NO_CACHE = {"Cache-Control": "no-cache"}


def call(port, path, headers=None):
    """(status, headers, body bytes) of one GET on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def metric(port, line_start):
    """The value of the first /metrics sample starting with line_start."""
    text = call(port, "/metrics")[2].decode()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class QueriesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("queries")
        cls.broker = Devbroker(["pageviews:4"])
        gen = spawn([GEN, "--brokers", cls.broker.bootstrap, "--topic", "pageviews",
                     "--count", str(N), "--seed", "7", "--start-time", str(BASE),
                     "--step-ms", "1", "--compression", "lz4", "--quiet"],
                    stderr=subprocess.PIPE)
        _, err = gen.communicate(timeout=120)
        assert gen.returncode == 0, err
        # two daemons on the same events: one with the defaults but two
        # query threads, one with a 1 ms time budget
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=STREAM, views=[VIEW],
                       extra={"http": {"threads": 2},
                              "serving": {"query_threads": 2, "query_queue": 64}}).start()
        cls.tight = Daemon(cls.wd, cls.broker.bootstrap, streams=STREAM, views=[VIEW], name="tight",
                           extra={"kafka": {"group_id": "tight"},
                                  "http": {"limits": {"query_timeout_ms": 1}}}).start()
        cls.d.wait_archived(N, timeout=120)
        cls.tight.wait_archived(N, timeout=120)

    @classmethod
    def tearDownClass(cls):
        try:
            for d in (cls.d, cls.tight):
                rc = d.stop()
                if rc != 0:
                    raise AssertionError("lambdad exited with %s:\n%s" % (rc, d.logtext()))
        finally:
            cls.broker.stop()
            cls.wd.cleanup()

    def test_heavy_queries_leave_the_cheap_routes_answering(self):
        stop = threading.Event()
        answers, failures = [], []

        def heavy():
            while not stop.is_set():
                try:
                    s, _, body = call(self.d.port, HEAVY, NO_CACHE)
                    answers.append(s)
                    if s != 200:
                        failures.append((s, body))
                except Exception as e:   # noqa: BLE001 - reported below
                    failures.append(repr(e))
        clients = [threading.Thread(target=heavy, daemon=True) for _ in range(6)]
        for t in clients:
            t.start()
        running_seen = 0
        probes = 0
        try:
            # until the pool has been seen busy and the heavy clients have
            # had a few answers (bounded: a hang fails the test)
            def enough():
                nonlocal running_seen, probes
                for path in ("/healthz", "/readyz", "/metrics", "/v1/status"):
                    s, _, body = call(self.d.port, path)
                    self.assertEqual(s, 200, (path, body))
                    probes += 1
                    if path == "/v1/status":
                        pool = json.loads(body)["serving"]["query_pool"]
                        running_seen = max(running_seen, pool["running"])
                return running_seen >= 1 and len(answers) >= 12 and probes >= 40
            wait_until(enough, 120, "heavy queries answered while probing", interval=0)
            # Ingestion goes on while they run: new events are archived and
            # counted (no query makes the speed thread wait).
            extra = [json.dumps({"ts": BASE + 7200 + i, "user": "late-%d" % i, "page": "/x"})
                     for i in range(3000)]
            produce(self.broker.bootstrap, "pageviews", extra)
            self.d.wait_archived(N + 3000, timeout=120)
            self.assertEqual(call(self.d.port, "/readyz")[0], 200)
            self.assertTrue(running_seen >= 1)
        finally:
            stop.set()
            for t in clients:
                t.join(60)
        self.assertEqual(failures, [])
        total = json.loads(call(self.d.port, "/v1/views/by_user/query?granularity=all")[2])
        self.assertEqual(total["rows"][0]["metrics"]["views"], N + 3000)
        print("%d probes answered next to %d heavy answers (pool seen running %d)"
              % (probes, len(answers), running_seen))

    def test_timeout(self):
        s, h, body = call(self.tight.port, HEAVY, NO_CACHE)
        self.assertEqual((s, json.loads(body)), (503, {"error": {"status": 503, "message":
                         "query exceeded http.limits.query_timeout_ms (1 ms); narrow it "
                         "(from/to, filter, group_by or a coarser granularity)"}}))
        self.assertEqual(h["Retry-After"], "1")
        self.assertGreaterEqual(metric(self.tight.port, "lambdad_query_timeouts_total"), 1)
        st = self.tight.status()["serving"]["query_pool"]
        self.assertGreaterEqual(st["timeouts"], 1)
        # the cheap routes answer whatever the time budget
        self.assertEqual(call(self.tight.port, "/healthz")[0], 200)

    def test_no_cache_is_a_miss(self):
        q = "/v1/views/by_user/query?granularity=all&filter=page:/&limit=5&order_by=views"
        miss = 'lambdad_query_cache_total{result="miss"}'
        hit = 'lambdad_query_cache_total{result="hit"}'
        first = call(self.d.port, q)
        self.assertEqual(first[0], 200)
        self.assertEqual(call(self.d.port, q)[2], first[2])   # answered from the cache
        m0, h0 = metric(self.d.port, miss), metric(self.d.port, hit)
        s, _, body = call(self.d.port, q, NO_CACHE)
        self.assertEqual((s, body), (200, first[2]))
        self.assertEqual((metric(self.d.port, miss) - m0, metric(self.d.port, hit) - h0), (1, 0))
        # without the header: from the cache again
        self.assertEqual(call(self.d.port, q)[2], first[2])
        self.assertEqual((metric(self.d.port, miss) - m0, metric(self.d.port, hit) - h0), (1, 1))

        ac = self.d.status()["serving"]["answer_cache"]
        self.assertGreaterEqual(ac["entries"], 1)
        self.assertGreater(ac["bytes"], 0)
        self.assertEqual(ac["budget_bytes"], 64 << 20)
        self.assertGreaterEqual(ac["hits"], 2)
        for name in ("lambdad_query_cache_bytes", "lambdad_query_cache_entries"):
            self.assertGreater(metric(self.d.port, name), 0, name)
        self.assertEqual(metric(self.d.port, "lambdad_query_cache_budget_bytes"), 64 << 20)
        self.assertEqual(metric(self.d.port, "lambdad_query_pool_threads"), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
