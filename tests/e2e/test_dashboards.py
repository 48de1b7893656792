"""The dashboard routes against the real daemon and the independent model
(model.py): GET /v1/views/{view}/values/{dimension} (exact counts over
batch segments + live rows, most frequent first, prefix, limit, filter,
range, errors), the Grafana JSON datasource protocol under /grafana with
the request bodies Grafana's simpod-json-datasource sends (its README and
src/DataSource.ts, MetricFindQuery.ts: health check GET of the URL itself,
POST metrics / metric-payload-options / query / variable / tag-keys /
tag-values) and exact answers, the web UI's assets (types, ETag, 304,
security headers, no token needed), and the rejects in /v1/status that the
UI's status strip shows."""
import http.client
import json
import os
import re
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce, stop_all  # noqa: E402
from model import answer_gran, buckets_of, expected, rfc3339  # noqa: E402

BASE = 1795420800   # 2026-11-23T08:00:00Z
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
STREAM = [{"name": "pageviews", "topic": "pageviews", "time_field": "ts"}]
PAGES = {"name": "pages", "stream": "pageviews", "granularity": "minute",
         "dimensions": ["country", "page"],
         "metrics": [{"name": "views", "type": "count"},
                     {"name": "bytes", "type": "sum", "field": "bytes"},
                     {"name": "slow", "type": "count", "where": "ms > 100"}]}
# no count metric: values come in value order with a null count
SIZES = {"name": "sizes", "stream": "pageviews", "granularity": "hour",
         "dimensions": ["page"], "metrics": [{"name": "bytes", "type": "sum", "field": "bytes"}]}
COUNTRIES = ["DE", "FR", "US", "DE", "DE", "FR", None]   # None: the field is missing


def event(i):
    e = {"ts": BASE + i * 12, "page": "/" + "abc"[i % 3], "bytes": i, "ms": i % 150}
    if COUNTRIES[i % 7]:
        e["country"] = COUNTRIES[i % 7]
    return json.dumps(e)


MAX_ROWS = 200
FIRST = [event(i) for i in range(300)]
SECOND = [event(i) for i in range(300, 602)]   # 602 = 86 * 7: US and null tie
BAD = ['{"ts": "soon", "page": "/x"}', "not json at all"]
# Then in one partition (so in this order): one of each other reason, past
# the five latest_rejects keeps, the last longer than the 199 bytes kept,
# cut inside a character (2-byte "é": 8 + 191 bytes keep 95 and a half).
MORE_BAD = ["42", '{"page": "/y"}', '["a"]', "not json" + "\u00e9" * 150]


def call(port, method, path, body=None, headers=None):
    """(status, headers, body bytes) on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def model_values(payloads, dim, prefix=None, limit=100, **q):
    """What the values route must answer: the model's group_by on dim,
    ordered by count (descending), ties by value (null first)."""
    rows = expected(payloads, STREAM[0], PAGES, granularity="all", group_by=dim,
                    metrics="views", **q)
    vals = [(r["dims"][dim], r["metrics"]["views"]) for r in rows]
    vals.sort(key=lambda v: (-v[1], (0, "") if v[0] is None else (1, v[0])))
    if prefix is not None:
        vals = [v for v in vals if v[0] is not None and v[0].startswith(prefix)]
    return [{"value": v, "count": n} for v, n in vals[:limit]]


class DashboardsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("dashboards")
        cls.broker = Devbroker(["pageviews:2"])
        # max_rows: 200 for the Grafana query that fill would take past it
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=STREAM, views=[PAGES, SIZES],
                       extra={"http": {"limits": {"max_rows": MAX_ROWS}}}).start()
        # half of the events in batch segments, half live
        produce(cls.broker.bootstrap, "pageviews", FIRST + BAD[:1])
        cls.d.wait_archived(300, 1)
        cls.d.run_batch()
        produce(cls.broker.bootstrap, "pageviews", SECOND + BAD[1:])
        cls.d.wait_archived(602, 2)
        produce(cls.broker.bootstrap, "pageviews", MORE_BAD, partition=0)
        cls.d.wait_archived(602, 2 + len(MORE_BAD))
        cls.all = FIRST + SECOND

    @classmethod
    def tearDownClass(cls):
        stop_all(cls)

    def get(self, path):
        s, _, b = call(self.d.port, "GET", path)
        return s, json.loads(b)

    def post(self, path, body):
        s, _, b = call(self.d.port, "POST", path, body, {"Content-Type": "application/json"})
        return s, json.loads(b)

    # ---- values ----

    def test_values(self):
        st = self.d.status()
        self.assertEqual(st["speed"]["live_events"] + st["speed"]["pending_events"], 302)
        s, b = self.get("/v1/views/pages/values/country")
        self.assertEqual(s, 200, b)
        want = model_values(self.all, "country")
        # US and the missing country tie: null first
        self.assertEqual([v["value"] for v in want], ["DE", "FR", None, "US"])
        self.assertEqual(b["values"], want)
        self.assertEqual((b["view"], b["dimension"]), ("pages", "country"))
        self.assertEqual(b["watermark"]["live_events"], 302)
        self.assertEqual(b["watermark"]["batch_seq"], st["batch"]["R"])

        lo, hi = BASE + 1800, BASE + 5400
        for path, want in [
            ("/v1/views/pages/values/page?limit=2", model_values(self.all, "page", limit=2)),
            ("/v1/views/pages/values/country?from=%d&to=%d" % (lo, hi),
             model_values(self.all, "country", **{"from": lo, "to": hi})),
            ("/v1/views/pages/values/country?from=%s&to=%s" % (rfc3339(lo), rfc3339(hi)),
             model_values(self.all, "country", **{"from": lo, "to": hi})),
            ("/v1/views/pages/values/country?prefix=F", [{"value": "FR", "count": 172}]),
            ("/v1/views/pages/values/country?prefix=D&limit=3", [{"value": "DE", "count": 258}]),
            ("/v1/views/pages/values/country?filter=page:/a", model_values(self.all, "country",
                                                                           filter="page:/a")),
            ("/v1/views/pages/values/page?prefix=/&limit=1", model_values(self.all, "page",
                                                                          prefix="/", limit=1)),
            ("/v1/views/pages/values/country?prefix=X", []),
        ]:
            s, b = self.get(path)
            self.assertEqual((s, b["values"]), (200, want), path)
        self.assertEqual(model_values(self.all, "country", prefix="F"),
                         [{"value": "FR", "count": 172}])

        # no count metric: value order, count null
        s, b = self.get("/v1/views/sizes/values/page")
        self.assertEqual((s, b["values"]), (200, [{"value": "/a", "count": None},
                                                  {"value": "/b", "count": None},
                                                  {"value": "/c", "count": None}]))

    def test_values_errors(self):
        for path, status, msg in [
            ("/v1/views/nope/values/country", 404, "unknown view 'nope'"),
            ("/v1/views/pages/values/city", 404, "unknown dimension 'city' of view 'pages'"),
            ("/v1/views/pages/values/country?top=3", 400,
             "unknown parameter 'top' (expected from, to, prefix, filter or limit)"),
            ("/v1/views/pages/values/country?limit=0", 400,
             "invalid limit '0' (expected an integer from 1 to 100000)"),
            ("/v1/views/pages/values/country?limit=1&limit=2", 400, "duplicate parameter 'limit'"),
            ("/v1/views/pages/values/country?prefix=", 400, "empty value for parameter 'prefix'"),
            ("/v1/views/pages/values/country?from=yesterday", 400,
             "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339"),
            ("/v1/views/pages/values/country?filter=city:x", 400, "unknown dimension 'city' in filter"),
        ]:
            self.assertEqual(self.get(path), (status, {"error": {"status": status, "message": msg}}),
                             path)
        s, h, b = call(self.d.port, "POST", "/v1/views/pages/values/country")
        self.assertEqual((s, h["Allow"]), (405, "GET, HEAD"))

    # ---- Grafana ----

    def test_grafana_health_and_lists(self):
        for path in ("/grafana", "/grafana/"):
            self.assertEqual(self.get(path), (200, {"status": "ok", "datasource": "lambdad"}))
        s, b = self.post("/grafana/metrics", {})
        self.assertEqual(s, 200, b)
        self.assertEqual([m["value"] for m in b], ["pages.views", "pages.bytes", "pages.slow",
                                                   "sizes.bytes"])
        self.assertEqual(b[0]["label"], "pages.views")
        self.assertEqual(b[0]["payloads"][0], {
            "label": "Group by", "name": "group_by", "type": "multi-select",
            "placeholder": "dimensions",
            "options": [{"label": "country", "value": "country"}, {"label": "page", "value": "page"}]})
        self.assertEqual([p["name"] for p in b[0]["payloads"]], ["group_by", "filter", "where", "format"])
        # the builder's reload: the current metric and payload
        s, b2 = self.post("/grafana/metrics", {"metric": "pages.views", "payload": {"group_by": "page"}})
        self.assertEqual((s, b2), (200, b))
        self.assertEqual(self.post("/grafana/metric-payload-options",
                                   {"metric": "sizes.bytes", "payload": {}, "name": "group_by"}),
                         (200, [{"label": "page", "value": "page"}]))
        self.assertEqual(self.post("/grafana/metric-payload-options",
                                   {"metric": "pages.views", "payload": {}, "name": "format"}),
                         (200, []))
        self.assertEqual(self.post("/grafana/tag-keys", {}),
                         (200, [{"type": "string", "text": "country"},
                                {"type": "string", "text": "page"}]))
        self.assertEqual(self.post("/grafana/search", {"target": "pages.b"}), (200, ["pages.bytes"]))

    def grafana_range(self, lo, hi):
        return {"from": rfc3339(lo).replace("Z", ".000Z"), "to": rfc3339(hi).replace("Z", ".000Z"),
                "raw": {"from": "now-2h", "to": "now"}}

    def test_grafana_query(self):
        lo, hi = BASE, BASE + 7200
        body = {
            "app": "dashboard", "requestId": "Q100", "timezone": "browser", "panelId": 2,
            "dashboardUID": "lambdad", "range": self.grafana_range(lo, hi),
            "rangeRaw": {"from": "now-2h", "to": "now"}, "interval": "15s", "intervalMs": 15000,
            "maxDataPoints": 550,
            "targets": [
                {"refId": "A", "datasource": {"type": "simpod-json-datasource", "uid": "lambdad"},
                 "editorMode": "code", "target": "pages.views", "payload": {"group_by": ["country"]}},
                {"refId": "B", "target": "pages.bytes", "payload": {"filter": "page:/a,page:/b"}},
                {"refId": "C", "target": "pages.slow", "hide": True, "payload": {}},
                {"refId": "D"},   # a placeholder without a target
            ],
            "adhocFilters": [{"key": "country", "operator": "=", "value": "DE"}],
            "scopedVars": {"__interval": {"text": "15s", "value": "15s"},
                           "__interval_ms": {"text": "15000", "value": 15000}},
            "startTime": 1795428000000,
        }
        s, b = self.post("/grafana/query", body)
        self.assertEqual(s, 200, b)
        # what the datasource asks: the range in epoch ms, auto for
        # maxDataPoints, every bucket (a gap is null)
        q = {"from": str(lo * 1000), "to": str(hi * 1000), "granularity": "auto",
             "max_points": "550", "fill": "null"}
        a = expected(self.all, STREAM[0], PAGES, group_by="country", filter="country:DE",
                     metrics="views", **q)
        bb = expected(self.all, STREAM[0], PAGES, filter="page:/a,page:/b,country:DE",
                      metrics="bytes", **q)
        want = [{"target": "pages.views{country=DE}",
                 "datapoints": [[r["metrics"]["views"], r["ts"] * 1000] for r in a]},
                {"target": "pages.bytes",
                 "datapoints": [[r["metrics"]["bytes"], r["ts"] * 1000] for r in bb]}]
        self.assertEqual(len(want[0]["datapoints"]), 120)
        self.assertEqual(b, want)

        # a table, over the whole range; a coarser granularity for fewer points
        body2 = {"range": self.grafana_range(lo, hi), "intervalMs": 60000, "maxDataPoints": 1,
                 "targets": [{"refId": "A", "target": "pages.views",
                              "payload": {"group_by": "page", "format": "table",
                                          "granularity": "all"}},
                             {"refId": "B", "target": "pages.views", "payload": {}}]}
        s, b = self.post("/grafana/query", body2)
        self.assertEqual(s, 200, b)
        t = expected(self.all, STREAM[0], PAGES, group_by="page", metrics="views",
                     **{"from": lo, "to": hi, "granularity": "all"})
        one = {"from": str(lo * 1000), "to": str(hi * 1000), "granularity": "auto",
               "max_points": "1", "fill": "null"}
        hours = expected(self.all, STREAM[0], PAGES, metrics="views", **one)
        self.assertEqual(answer_gran(PAGES, **one), "2h")
        self.assertEqual(len(hours), 1)
        self.assertEqual(b, [
            {"type": "table", "columns": [{"text": "page", "type": "string"},
                                          {"text": "views", "type": "number"}],
             "rows": [[r["dims"]["page"], r["metrics"]["views"]] for r in t]},
            {"target": "pages.views", "datapoints": [[r["metrics"]["views"], r["ts"] * 1000]
                                                     for r in hours]}])

    def test_grafana_gaps_and_no_range(self):
        # the range runs 5 minutes past the last event: those are null
        # points (gaps), not missing ones
        lo, hi = BASE + 7080, BASE + 7500
        body = {"range": self.grafana_range(lo, hi), "intervalMs": 1000, "maxDataPoints": 1200,
                "targets": [{"refId": "A", "target": "pages.slow", "payload": {}},
                            {"refId": "B", "target": "sizes.bytes",
                             "payload": {"granularity": "hour", "group_by": ["page"]}}]}
        s, b = self.post("/grafana/query", body)
        self.assertEqual(s, 200, b)
        q = {"from": str(lo * 1000), "to": str(hi * 1000), "fill": "null"}
        slow = expected(self.all, STREAM[0], PAGES, where={"slow": lambda e: e["ms"] > 100},
                        metrics="slow", granularity="auto", max_points="1200", **q)
        sizes = expected(self.all, STREAM[0], SIZES, group_by="page", granularity="hour", **q)
        want = [{"target": "pages.slow",
                 "datapoints": [[r["metrics"]["slow"], r["ts"] * 1000] for r in slow]}]
        # only /a and /b have events in the range; the bucket at 09:00 is a gap
        for page in ("/a", "/b"):
            want.append({"target": "sizes.bytes{page=%s}" % page,
                         "datapoints": [[r["metrics"]["bytes"], r["ts"] * 1000]
                                        for r in sizes if r["dims"]["page"] == page]})
        self.assertEqual([p[0] for p in want[0]["datapoints"]][3:], [None] * 4)
        self.assertEqual(len(want[0]["datapoints"]), 7)
        self.assertEqual([p[0] for p in want[1]["datapoints"]], [None, 600])
        self.assertEqual(b, want)

        # a day of 5-minute buckets for 3 pages (864 rows) is more than
        # http.limits.max_rows: the rows there are (2 hours' worth), unfilled
        lo, hi = BASE, BASE + 86400
        body = {"range": self.grafana_range(lo, hi), "maxDataPoints": 1000,
                "targets": [{"refId": "A", "target": "pages.views", "payload": {"group_by": "page"}}]}
        q = {"from": str(lo * 1000), "to": str(hi * 1000), "granularity": "auto",
             "max_points": "1000", "group_by": "page", "metrics": "views"}
        s, b = self.get("/v1/views/pages/query?" + urllib.parse.urlencode(dict(q, fill="null")))
        self.assertEqual((s, b), (413, {"error": {"status": 413, "message":
                                                  "fill would give more than 200 rows; narrow "
                                                  "from/to or group_by, or use a coarser granularity"}}))
        s, b = self.post("/grafana/query", body)
        self.assertEqual(s, 200, b)
        rows = expected(self.all, STREAM[0], PAGES, **q)
        self.assertEqual(answer_gran(PAGES, **q), "5m")
        self.assertEqual(len(rows), 3 * 24 + 2)   # the last bucket: events 600 (/a), 601 (/b)
        self.assertEqual(b, [{"target": "pages.views{page=%s}" % page,
                              "datapoints": [[r["metrics"]["views"], r["ts"] * 1000]
                                             for r in rows if r["dims"]["page"] == page]}
                             for page in ("/a", "/b", "/c")])

        # no range (nothing for auto to divide): intervalMs picks the unit
        body = {"intervalMs": 3600 * 1000, "targets": [{"refId": "A", "target": "pages.views"}]}
        s, b = self.post("/grafana/query", body)
        self.assertEqual(s, 200, b)
        hours = expected(self.all, STREAM[0], PAGES, metrics="views", granularity="hour")
        self.assertEqual(b, [{"target": "pages.views",
                              "datapoints": [[r["metrics"]["views"], r["ts"] * 1000]
                                             for r in hours]}])
        self.assertEqual(len(hours), 3)

    def test_grafana_variables(self):
        rng = self.grafana_range(BASE, BASE + 7200)
        # the plugin's MetricFindQuery: {"payload": <the variable's query>, "range"}
        s, b = self.post("/grafana/variable", {"payload": {"target": "pages.country"}, "range": rng})
        self.assertEqual(s, 200, b)
        self.assertEqual(b, [{"__text": v["value"], "__value": v["value"]}
                             for v in model_values(self.all, "country") if v["value"] is not None])
        self.assertEqual(self.post("/grafana/variable", {"payload": {"target": "views"}}),
                         (200, [{"__text": "pages", "__value": "pages"},
                                {"__text": "sizes", "__value": "sizes"}]))
        s, b = self.post("/grafana/tag-values", {"key": "page"})
        self.assertEqual((s, b), (200, [{"text": "/a"}, {"text": "/b"}, {"text": "/c"}]))

    def test_grafana_errors(self):
        for path, body, status, msg in [
            ("/grafana/query", "{not json", 400,
             "request body is not valid JSON: string or '}' expected near 'not' at 1:4"),
            ("/grafana/query", "[1]", 400, "request body must be a JSON object"),
            ("/grafana/query", {"targets": [{"target": "pages.nope"}]}, 404,
             "unknown target 'pages.nope' (expected view.metric, as POST /grafana/metrics lists them)"),
            ("/grafana/query", {"range": {"from": "now-1h", "to": "now"},
                                "targets": [{"target": "pages.views"}]}, 400,
             "invalid range.from: expected an RFC 3339 time such as 2026-11-23T10:00:00.000Z"),
            ("/grafana/query", {"targets": [{"target": "pages.views"}],
                                "adhocFilters": [{"key": "country", "operator": "!=", "value": "DE"}]},
             400, "ad hoc filter operator '!=' is not supported (only =)"),
            ("/grafana/query", {"targets": [{"target": "pages.views", "payload": {"group_by": "city"}}]},
             400, "unknown dimension 'city' in group_by"),
            ("/grafana/query", {"targets": [{"target": "pages.views", "payload": {"filter": 3}}]}, 400,
             "payload.filter of target 'pages.views' must be \"dim:value,...\" or "
             "{\"dim\": value or [values]}"),
            ("/grafana/variable", {"payload": {"target": "pages.city"}}, 404,
             "unknown variable target 'pages.city' (expected view.dimension, or views)"),
            ("/grafana/tag-values", {"key": "city"}, 404,
             "unknown tag key 'city' (expected a dimension, as POST /grafana/tag-keys lists them)"),
            ("/grafana/metric-payload-options", {"metric": "x.y", "name": "group_by"}, 404,
             "unknown metric 'x.y' (expected view.metric, as POST /grafana/metrics lists them)"),
        ]:
            self.assertEqual(self.post(path, body),
                             (status, {"error": {"status": status, "message": msg}}), (path, body))
        s, h, _ = call(self.d.port, "GET", "/grafana/query")
        self.assertEqual((s, h["Allow"]), (405, "POST"))

    # ---- the web UI's assets and the status strip ----

    def test_ui_assets(self):
        s, h, page = call(self.d.port, "GET", "/")
        self.assertEqual((s, h["Content-Type"]), (200, "text/html; charset=utf-8"))
        self.assertIn(b'<script src="/ui/app.js" defer></script>', page)
        self.assertIn("script-src 'self'", h["Content-Security-Policy"])
        self.assertEqual((h["X-Frame-Options"], h["X-Content-Type-Options"], h["Cache-Control"]),
                         ("DENY", "nosniff", "no-cache"))
        s, h2, empty = call(self.d.port, "GET", "/", headers={"If-None-Match": h["ETag"]})
        self.assertEqual((s, empty, h2["ETag"]), (304, b"", h["ETag"]))
        for name, ctype, min_len in [("app.js", "text/javascript; charset=utf-8", 1000),
                                     ("app.css", "text/css; charset=utf-8", 1000),
                                     ("dygraph.min.js", "text/javascript; charset=utf-8", 100000),
                                     ("dygraph.min.css", "text/css; charset=utf-8", 500)]:
            s, h, b = call(self.d.port, "GET", "/ui/" + name)
            self.assertEqual((s, h["Content-Type"]), (200, ctype), name)
            self.assertGreater(len(b), min_len, name)
            self.assertNotIn("Content-Security-Policy", h)
        with open("/usr/share/javascript/dygraphs/dygraph.min.js", "rb") as f:
            self.assertEqual(call(self.d.port, "GET", "/ui/dygraph.min.js")[2], f.read())
        for path in ("/ui/nope.js", "/ui/index.html", "/ui/a/b"):
            s, _, b = call(self.d.port, "GET", path)
            self.assertEqual((s, json.loads(b)), (404, {"error": {"status": 404, "message":
                                                                  "no such endpoint: " + path}}))

    def test_status_rejects(self):
        sp = self.d.status()["speed"]
        self.assertEqual(sp["rejects_by_reason"], {"invalid_json": 2, "not_an_object": 2,
                                                   "missing_time": 1, "bad_time": 1,
                                                   "retention": 0})
        latest = sp["latest_rejects"]
        # the five latest, newest first: BAD[0] (the first) is gone
        long_kept = "not json" + "\u00e9" * 95 + "\ufffd"
        self.assertEqual([(r["reason"], r["payload"], r["payload_bytes"], r["topic"]) for r in latest],
                         [("invalid_json", long_kept, 8 + 2 * 150, "pageviews"),
                          ("not_an_object", MORE_BAD[2], len(MORE_BAD[2]), "pageviews"),
                          ("missing_time", MORE_BAD[1], len(MORE_BAD[1]), "pageviews"),
                          ("not_an_object", MORE_BAD[0], len(MORE_BAD[0]), "pageviews"),
                          ("invalid_json", BAD[1], len(BAD[1]), "pageviews")])
        self.assertTrue(all(r["detail"] for r in latest), latest)
        self.assertEqual([r["partition"] for r in latest[:4]], [0] * 4)
        self.assertEqual([latest[i]["offset"] - latest[i + 1]["offset"] for i in range(3)], [1] * 3)


class DeployedDashboardsTest(unittest.TestCase):
    """deploy/grafana's dashboards against a daemon with the demo's views
    (config/lambdad.example.json): every JSON datasource target is listed
    by /grafana/metrics and answered by /grafana/query with its payload as
    Grafana sends it (variables replaced); every Infinity panel's URL is
    answered by the native API."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(ROOT, "config", "lambdad.example.json")) as f:
            example = json.loads(re.sub(r"^\s*//.*$", "", f.read(), flags=re.M))
        cls.wd = Workdir("dashboards-demo")
        cls.broker = Devbroker(["pageviews:1"])
        cls.views = {v["name"]: v for v in example["views"]}
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=example["streams"],
                       views=example["views"]).start()
        produce(cls.broker.bootstrap, "pageviews", [json.dumps(
            {"ts": BASE + i, "page": "/p%d" % (i % 3), "country": "DE", "bytes": 10, "ms": i})
            for i in range(30)])
        cls.d.wait_archived(30)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.broker.stop()
            cls.wd.cleanup()

    def dashboard(self, name):
        with open(os.path.join(ROOT, "deploy", "grafana", "dashboards", name)) as f:
            return json.load(f)

    def test_json_datasource_dashboard(self):
        dash = self.dashboard("lambdad-json.json")
        s, _, b = call(self.d.port, "POST", "/grafana/metrics", "{}")
        listed = {m["value"] for m in json.loads(b)}
        rng = {"from": rfc3339(BASE).replace("Z", ".000Z"),
               "to": rfc3339(BASE + 60).replace("Z", ".000Z")}
        var = dash["templating"]["list"][0]
        s, _, b = call(self.d.port, "POST", "/grafana/variable",
                       {"payload": {"target": var["query"]["query"]}, "range": rng})
        self.assertEqual((s, json.loads(b)), (200, [{"__text": "DE", "__value": "DE"}]))
        for p in dash["panels"]:
            for t in p["targets"]:
                self.assertIn(t["target"], listed, p["title"])
                payload = json.loads(t["payload"].replace("$country", "DE"))
                body = {"range": rng, "intervalMs": 1000, "maxDataPoints": 500,
                        "targets": [{"refId": t["refId"], "target": t["target"], "payload": payload}]}
                s, _, b = call(self.d.port, "POST", "/grafana/query", body)
                self.assertEqual(s, 200, (p["title"], b))
                self.assertTrue(json.loads(b), (p["title"], b))

    def test_infinity_dashboard(self):
        for p in self.dashboard("lambdad-infinity.json")["panels"]:
            for t in p["targets"]:
                # Grafana's ${__from} and ${__to}: epoch milliseconds
                macros = {"${__from}": str(BASE * 1000), "${__to}": str((BASE + 3600) * 1000)}
                params = {q["key"]: macros.get(q["value"], q["value"])
                          for q in t["url_options"]["params"]}
                self.assertEqual((params["from"], params["to"]), tuple(macros.values()))
                s, _, b = call(self.d.port, "GET", t["url"] + "?" + urllib.parse.urlencode(params))
                self.assertEqual(s, 200, (p["title"], b))
                rows = json.loads(b)[t["root_selector"]]
                self.assertTrue(rows, p["title"])
                for c in t["columns"]:   # every column's selector finds a value
                    v = rows[0]
                    for k in c["selector"].split("."):
                        v = v[k]
                    self.assertIsNotNone(v, (p["title"], c))
                if params.get("fill") == "null":   # the hour's every bucket, for each group
                    view = self.views[t["url"].split("/")[3]]
                    starts = buckets_of(BASE, BASE + 3600, answer_gran(view, **params), None)
                    groups = {json.dumps(r["dims"]) for r in rows}
                    self.assertEqual(sorted({r["ts"] for r in rows}), starts, p["title"])
                    self.assertEqual(len(rows), len(starts) * len(groups), p["title"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
