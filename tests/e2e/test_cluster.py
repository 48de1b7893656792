"""End to end: scale-out (README, "Running several instances"). One
devbroker topic of 8 partitions; three shards (a: partitions 0-2, b: 3-5,
c: 6-7), a replica of shard a, and a single instance reading everything as
the reference. Every instance answers every query shape for the whole
cluster, equal to the single instance's answer and to the independent
model (tests/e2e/model.py); events are half in batch segments and half
live. Then shard a's instances are killed one by one: its replica serves
with answers still exact; with both gone a query is a 503 naming the shard,
or with partial=true an answer marked partial that lacks exactly that
shard's events."""
import json
import os
import random
import re
import ssl
import sys
import threading
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, make_cert, produce, wait_until  # noqa: E402
from model import assert_rows, expected  # noqa: E402

START = 1772668800   # 2026-03-05T00:00:00Z
SPAN = 3 * 86400
PARTITIONS = 8
SHARDS = {"a": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7]}
STREAM = {"name": "web", "topic": "web", "time_field": "ts"}
BY_PAGE = {"name": "by_page", "stream": "web", "granularity": "minute",
           "dimensions": ["page", "country"],
           "metrics": [{"name": "views", "type": "count"},
                       {"name": "bytes", "type": "sum", "field": "bytes"},
                       {"name": "slowest", "type": "max", "field": "ms"},
                       {"name": "fastest", "type": "min", "field": "ms"},
                       {"name": "avg_ms", "type": "avg", "field": "ms"}]}
SKETCHES = {"name": "sketches", "stream": "web", "granularity": "hour", "dimensions": ["page"],
            "metrics": [{"name": "views", "type": "count"},
                        {"name": "users", "type": "distinct", "field": "user"},
                        {"name": "lat", "type": "quantiles", "field": "ms"}]}
VIEWS = {"by_page": BY_PAGE, "sketches": SKETCHES}

# (view, parameters, the model's expressions) for the model-checked shapes
SHAPES = [
    ("by_page", {"granularity": "all"}, {}),
    ("by_page", {"granularity": "hour", "group_by": "country"}, {}),
    ("by_page", {"granularity": "day", "group_by": "page,country", "order_by": "views",
                 "limit": "4"}, {}),
    ("by_page", {"granularity": "all", "group_by": "page", "order_by": "bytes", "order": "asc"},
     {}),
    ("by_page", {"granularity": "all", "group_by": "page", "filter": "country:DE"}, {}),
    ("by_page", {"granularity": "day", "group_by": "page", "where": "country = 'US'",
                 "metrics": "views,slowest"}, {"qwhere": lambda d: d["country"] == "US"}),
    ("by_page", {"granularity": "all", "group_by": "country",
                 "metrics": "views,bytes,per_view=bytes/views", "having": "views > 300"},
     {"qpost": {"per_view": lambda m: m["bytes"] / m["views"]},
      "qhaving": lambda m: m["views"] > 300}),
    ("by_page", {"granularity": "6h", "from": str(START), "to": str(START + 86400),
                 "fill": "zero", "group_by": "country"}, {}),
    ("by_page", {"granularity": "day", "tz": "America/New_York"}, {}),
]
# shapes compared with the single instance's answer only (sketches, CSV)
SAME_AS_SOLO = [
    "/v1/views/sketches/query?granularity=all&group_by=page",
    "/v1/views/sketches/query?granularity=day&quantiles=0.5,0.99&order_by=lat.p99&limit=2",
    "/v1/views/by_page/query?granularity=hour&group_by=page&format=csv",
    "/v1/views/by_page/values/country",
    "/v1/views/by_page/values/page?limit=2",
]


def events(n, seed):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        e = {"ts": START + rnd.randrange(SPAN), "page": rnd.choice(["/a", "/b", "/c", "/d"]),
             "bytes": rnd.randrange(5000), "ms": rnd.randrange(1, 2000),
             "user": "u%d" % rnd.randrange(300)}
        if rnd.random() < 0.9:
            e["country"] = rnd.choice(["DE", "US", "FR"])
        out.append(json.dumps(e))
    return out


def raw_get(d, path):
    """(status, body text, headers) of GET path."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (d.port, path), timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def varint(b, i):
    """(value, next index) of the LEB128 varint at b[i]."""
    v = shift = 0
    while True:
        v |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not b[i - 1] & 0x80:
            return v, i


def partial_rows(d, path):
    """The shard name and the rows' bytes of a partial answer (serving/
    partial.h): after the magic, the layout hash, the shard and the four
    watermark varints, without the trailing checksum."""
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (d.port, path), timeout=30) as r:
        assert r.headers["Content-Type"] == "application/x-lambdad-partial", r.headers
        b = r.read()
    assert b[:4] == b"LDP\x01", b[:4]
    n, i = varint(b, 12)
    shard = b[i:i + n].decode()
    i += n
    for _ in range(4):
        _, i = varint(b, i)
    return shard, b[i:-8]   # without the checksum, which covers the header too


class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("cluster")
        cls.broker = Devbroker(["web:%d" % PARTITIONS])
        views = [BY_PAGE, SKETCHES]
        cls.solo = Daemon(cls.wd, cls.broker.bootstrap, streams=[STREAM], views=views,
                          name="solo", extra={"kafka": {"group_id": "solo"}})
        cls.members = {}
        for name, shard in (("a", "a"), ("a2", "a"), ("b", "b"), ("c", "c")):
            cls.members[name] = Daemon(
                cls.wd, cls.broker.bootstrap, streams=[STREAM], views=views, name=name,
                extra={"kafka": {"group_id": name, "partitions": {"web": SHARDS[shard]}}})
            cls.members[name].shard = shard
        for name, d in cls.members.items():
            d.rewrite_config(cluster={
                "shard": d.shard, "retry_after_ms": 60000,
                "peers": [{"url": "http://127.0.0.1:%d" % o.port, "shard": o.shard}
                          for n, o in cls.members.items() if n != name]})
        cls.started = []
        for d in [cls.solo] + list(cls.members.values()):
            d.start()
            cls.started.append(d)
        # the first half goes into batch segments, the second stays live
        cls.by_partition = {p: [] for p in range(PARTITIONS)}
        evs = events(4000, 11)
        for i, e in enumerate(evs):
            cls.by_partition[i % PARTITIONS].append(e)
        cls.payloads = []
        for half in (0, 1):
            for p in range(PARTITIONS):
                part = cls.by_partition[p]
                chunk = part[: len(part) // 2] if half == 0 else part[len(part) // 2:]
                produce(cls.broker.bootstrap, "web", chunk, partition=p)
                cls.payloads += chunk
            for d in cls.started:
                d.wait_archived(cls.count_of(d, half))
                if half == 0:
                    d.run_batch()

    @classmethod
    def count_of(cls, d, half):
        parts = range(PARTITIONS) if d is cls.solo else SHARDS[d.shard]
        n = 0
        for p in parts:
            part = cls.by_partition[p]
            n += len(part) // 2 if half == 0 else len(part)
        return n

    @classmethod
    def tearDownClass(cls):
        try:
            for d in cls.started:
                if d.proc.poll() is None:
                    rc = d.stop()
                    if rc != 0:
                        raise AssertionError("lambdad exited with %s:\n%s" % (rc, d.logtext()))
        finally:
            cls.broker.stop()
            cls.wd.cleanup()

    def path(self, view, q):
        return "/v1/views/%s/query?%s" % (view, urllib.parse.urlencode(q))

    def check_shapes(self, instances, payloads=None, missing=None):
        payloads = payloads or self.payloads
        for view, q, model_args in SHAPES:
            model_q = {k: v for k, v in q.items() if k not in ("where", "having")}
            want = expected(payloads, STREAM, VIEWS[view], **model_args, **model_q)
            if missing:
                q = dict(q, partial="true")
            for d in instances:
                what = "%s on %s" % (self.path(view, q), d.shard if d is not self.solo else "solo")
                s, b = d.get(self.path(view, q))
                self.assertEqual(s, 200, (what, b))
                assert_rows(b["rows"], want, what)
                if d is self.solo:
                    self.assertNotIn("shards", b["watermark"])
                    continue
                shards = sorted(w["shard"] for w in b["watermark"]["shards"])
                self.assertEqual(shards, sorted(set("abc") - set(missing or [])), what)
                if missing:
                    self.assertEqual((b["partial"], b["missing_shards"]), (True, missing), what)
                else:
                    self.assertNotIn("partial", b, what)

    def test_1_every_instance_answers_for_the_cluster(self):
        self.check_shapes([self.solo] + list(self.members.values()))
        for path in SAME_AS_SOLO:
            s, want, _ = raw_get(self.solo, path)
            self.assertEqual(s, 200, (path, want))
            for d in self.members.values():
                s, got, _ = raw_get(d, path)
                self.assertEqual(s, 200, (path, got))
                if path.startswith("/v1/views/by_page/values"):   # its watermark differs
                    got, want_v = json.loads(got)["values"], json.loads(want)["values"]
                    self.assertEqual(got, want_v, (path, d.shard))
                elif "format=csv" in path:
                    self.assertEqual(got, want, (path, d.shard))
                else:
                    self.assertEqual(json.loads(got)["rows"], json.loads(want)["rows"],
                                     (path, d.shard))

    def test_2_watermark_per_shard(self):
        b = self.members["b"].query("by_page", granularity="all")
        wm = b["watermark"]
        by_shard = {w["shard"]: w for w in wm["shards"]}
        self.assertEqual(sorted(by_shard), ["a", "b", "c"])
        self.assertIsNone(by_shard["b"]["peer"])   # this instance
        self.assertIn(by_shard["a"]["peer"], ("http://127.0.0.1:%d" % self.members["a"].port,
                                              "http://127.0.0.1:%d" % self.members["a2"].port))
        self.assertEqual(by_shard["c"]["peer"], "http://127.0.0.1:%d" % self.members["c"].port)
        # each shard's own status says the same; the answer sums live events
        for name in ("b", "c"):
            st = self.members[name].status()
            self.assertEqual(by_shard[name]["batch_seq"], st["batch"]["R"], name)
        self.assertEqual(wm["live_events"], sum(w["live_events"] for w in wm["shards"]))
        self.assertEqual(wm["live_events"], len(self.payloads) // 2)

    def test_3_internal_route_and_status(self):
        d = self.members["c"]
        s, body, _ = d.request("GET", "/v1/internal/views/nope/partial")
        self.assertEqual((s, body), (404, {"error": {"status": 404,
                                                     "message": "unknown view 'nope'"}}))
        s, body, _ = self.solo.request("GET", "/v1/internal/views/by_page/partial")
        self.assertEqual((s, body["error"]["message"]),
                         (404, "this instance is not part of a cluster (no cluster.shard)"))
        st = d.status()["cluster"]
        self.assertEqual(st["shard"], "c")
        self.assertEqual([(p["shard"], p["replica_of_this"]) for p in st["peers"]],
                         [("a", False), ("a", False), ("b", False)])
        self.assertTrue(all(p["up"] for p in st["peers"]))
        s, body, _ = d.request("GET", "/v1/views/by_page/query?partial=maybe")
        self.assertEqual((s, body["error"]["message"]),
                         (400, "invalid partial 'maybe' (expected true or false)"))

    def test_3_concurrent_fan_outs(self):
        """More fan-out queries at once than any instance has query threads,
        to every instance: each waits for the others' partial answers, which
        run on a pool of their own, so none waits for another's thread."""
        path = self.path("by_page", {"granularity": "hour", "group_by": "page,country"})
        want = expected(self.payloads, STREAM, BY_PAGE, granularity="hour",
                        group_by="page,country")
        members = [self.members[n] for n in ("a", "b", "c", "a2")]
        results = []

        def worker(d):
            for _ in range(3):
                s, b = d.get(path)
                results.append((d.shard, s, b["rows"] if s == 200 else b))
        threads = [threading.Thread(target=worker, args=(members[i % 4],)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 36)
        for shard, s, rows in results:
            self.assertEqual(s, 200, (shard, rows))
            assert_rows(rows, want, "concurrent fan-out on %s" % shard)

    def test_3_replicas_hold_the_same_bits(self):
        for q in ("granularity=minute&group_by=page,country",
                  "granularity=all&group_by=page&metrics=users,lat"):
            path = "/v1/internal/views/%s/partial?%s" % (
                "sketches" if "users" in q else "by_page", q)
            a = partial_rows(self.members["a"], path)
            a2 = partial_rows(self.members["a2"], path)
            b = partial_rows(self.members["b"], path)
            self.assertEqual(a[0], "a")
            self.assertEqual(b[0], "b")
            self.assertGreater(len(a[1]), 100)
            self.assertEqual(a, a2, q)
            self.assertNotEqual(a[1], b[1], q)

    def test_4_replica_serves_then_503_then_partial(self):
        a, a2, b = self.members["a"], self.members["a2"], self.members["b"]
        a.kill9()
        self.check_shapes([b, self.members["c"], a2])
        st = {p["url"]: p for p in b.status()["cluster"]["peers"]}
        url_a, url_a2 = ("http://127.0.0.1:%d" % x.port for x in (a, a2))
        # a is asked in turn with a2 until it fails once, then skipped
        wait_until(lambda: b.get(self.path("by_page", {"granularity": "all"}))[0] == 200 and
                   not {p["url"]: p for p in b.status()["cluster"]["peers"]}[url_a]["up"],
                   30, "b to see a down")
        st = {p["url"]: p for p in b.status()["cluster"]["peers"]}
        self.assertFalse(st[url_a]["up"])
        self.assertTrue(st[url_a2]["up"])
        self.assertRegex(st[url_a]["last_error"], "Couldn't connect to server")

        a2.kill9()
        s, body = b.get(self.path("by_page", {"granularity": "all"}))
        self.assertEqual(s, 503, body)
        self.assertEqual(body["error"]["message"],
                         "shard 'a' has no healthy replica (%s: Couldn't connect to server; "
                         "%s: Couldn't connect to server); add partial=true for an answer "
                         "without it" % (url_a, url_a2))
        rest = [e for p in range(PARTITIONS) if p not in SHARDS["a"]
                for e in self.by_partition[p]]
        self.check_shapes([b, self.members["c"]], payloads=rest, missing=["a"])
        s, text, headers = raw_get(b, "/v1/views/by_page/query?granularity=all&format=csv"
                                      "&partial=true")
        self.assertEqual(s, 200)
        self.assertEqual(headers.get("X-Lambdad-Missing-Shards"), "a")
        metrics = b.get_text("/metrics")
        self.assertIn('lambdad_peer_up{peer="%s",shard="a"} 0' % url_a2, metrics)
        self.assertRegex(metrics, r'lambdad_fanout_queries_total\{result="partial"\} [1-9]')
        self.assertTrue(re.search(r'lambdad_peer_requests_total\{peer="%s",result="error"\} '
                                  r'[1-9]' % re.escape(url_a2), metrics), metrics)


class TwoShards(unittest.TestCase):
    """A test of its own small cluster: a workdir, a devbroker topic "web"
    of 2 partitions, and the daemons the test starts, all stopped after."""

    def setUp(self):
        self.wd = Workdir("cluster-" + self._testMethodName)
        self.broker = Devbroker(["web:2"])
        self.daemons = []

    def tearDown(self):
        try:
            for d in self.daemons:
                if d.proc and d.proc.poll() is None:
                    self.assertEqual(d.stop(), 0, d.logtext())
        finally:
            self.broker.stop()
            self.wd.cleanup()


class MutualFanOutTest(TwoShards):
    """Two shards with one query thread each, each asked a question at the
    same moment: each question holds its instance's query thread while it
    waits for the other's partial answer. The partial answers run on a pool
    of their own, so both answer at once (with one pool, each partial
    answer would wait behind the other instance's question until the
    deadline). The pause point holds each instance's first fan-out after
    its requests went out, until both are there."""

    def test_both_answer(self):
        wd, broker, daemons = self.wd, self.broker, self.daemons
        shards = {"x": 0, "y": 1}
        for name in shards:
            d = Daemon(wd, broker.bootstrap, streams=[STREAM], views=[BY_PAGE], name=name,
                       extra={"kafka": {"group_id": name,
                                        "partitions": {"web": [shards[name]]}},
                              "serving": {"query_threads": 1}})
            d.shard = name
            daemons.append(d)
        for d in daemons:
            other = daemons[1] if d is daemons[0] else daemons[0]
            d.release = wd.file(d.shard + ".release")
            d.rewrite_config(cluster={"shard": d.shard, "peers": [
                {"url": "http://127.0.0.1:%d" % other.port, "shard": other.shard}]})
            d.start(env={"LAMBDAD_PAUSEPOINT": "fanout_sent:" + d.release})
        evs = events(200, 5)
        produce(broker.bootstrap, "web", evs[:100], partition=0)
        produce(broker.bootstrap, "web", evs[100:], partition=1)
        for d in daemons:
            d.wait_archived(100)
        path = "/v1/views/by_page/query?granularity=all&group_by=country"
        answers = {}
        threads = [threading.Thread(target=lambda d=d: answers.update({d.shard: d.get(path)}))
                   for d in daemons]
        for t in threads:
            t.start()
        for d in daemons:
            wait_until(lambda: os.path.exists(d.release + ".reached"), 30,
                       "%s's fan-out to be sent" % d.shard)
        for d in daemons:
            open(d.release, "w").close()
        for t in threads:
            t.join(60)
        want = expected(evs, STREAM, BY_PAGE, granularity="all", group_by="country")
        for name in shards:
            s, b = answers[name]
            self.assertEqual(s, 200, (name, b, "\n".join(d.logtext()[-2500:] for d in daemons)))
            assert_rows(b["rows"], want, "question to %s" % name)


class SecureClusterTest(TwoShards):
    """Two shards over HTTPS (a private CA: cluster.ca_file) with their own
    token (cluster.token_file) beside http.auth protecting every route:
    clients use the API token, peers the cluster token, and the internal
    route takes only the cluster token."""

    def test_https_and_tokens(self):
        wd, broker, daemons = self.wd, self.broker, self.daemons
        cert, key = make_cert(wd)
        for name, text in (("api.token", "api-T0ken\n"), ("cluster.token", "peer-T0ken\n")):
            with open(wd.file(name), "w") as f:
                f.write(text)
        for i, name in enumerate(("x", "y")):
            d = Daemon(wd, broker.bootstrap, streams=[STREAM], views=[BY_PAGE], name=name,
                       extra={"kafka": {"group_id": name, "partitions": {"web": [i]}},
                              "http": {"tls": {"cert_file": cert, "key_file": key},
                                       "auth": {"token_file": wd.file("api.token"),
                                                "protect": "all"}}})
            d.shard = name
            daemons.append(d)
        for d in daemons:
            other = daemons[1] if d is daemons[0] else daemons[0]
            d.rewrite_config(cluster={
                # a TLS handshake under ASan on a loaded machine can take longer than
                # the default 1 s connect timeout: this test is about TLS and tokens
                "shard": d.shard, "token_file": wd.file("cluster.token"), "ca_file": cert,
                "connect_timeout_ms": 15000,
                "peers": [{"url": "https://127.0.0.1:%d" % other.port, "shard": other.shard}]})
            d.start(wait_ready=False)
        ctx = ssl.create_default_context(cafile=cert)

        def get(d, path, token):
            req = urllib.request.Request("https://127.0.0.1:%d%s" % (d.port, path),
                                         headers={"Authorization": "Bearer " + token})
            try:
                with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()
        for d in daemons:
            wait_until(lambda: get(d, "/readyz", "")[0] == 200, 30, "%s ready" % d.shard)
        evs = events(300, 9)
        produce(broker.bootstrap, "web", evs[:150], partition=0)
        produce(broker.bootstrap, "web", evs[150:], partition=1)
        for d in daemons:
            wait_until(lambda: json.loads(get(d, "/v1/status", "api-T0ken")[1])
                       ["archive"]["events"] == 150, 60, "%s archived" % d.shard)
        want = expected(evs, STREAM, BY_PAGE, granularity="all", group_by="page")
        path = "/v1/views/by_page/query?granularity=all&group_by=page"
        for d in daemons:
            s, body = get(d, path, "api-T0ken")
            self.assertEqual(s, 200, body)
            assert_rows(json.loads(body)["rows"], want, "over https from " + d.shard)
        internal = "/v1/internal/views/by_page/partial?granularity=all"
        unauthorized = (401, b'{"error":{"status":401,"message":"missing or invalid bearer '
                             b'token"}}')
        self.assertEqual(get(daemons[1], internal, "api-T0ken"), unauthorized)
        self.assertEqual(get(daemons[1], internal, ""), unauthorized)
        self.assertEqual(get(daemons[1], internal, "peer-T0ken")[0], 200)
        self.assertEqual(get(daemons[1], path, "peer-T0ken"), unauthorized)


if __name__ == "__main__":
    unittest.main()
