"""End to end: the query parameters dashboards need (README, "GET
/v1/views/{view}/query"), against the independent model
(tests/e2e/model.py: Python's zoneinfo, not lambdad's ICU).

Events spread over four weeks around the 2026 daylight-saving changes of
America/New_York (March 8) and Europe/Berlin (March 29). Half of them are
in batch segments, half live; then all in segments. Every answer equals the
model: days, weeks and months in a zone (23-hour days), multiples (15m, 6h,
7d), epoch milliseconds, auto with max_points, fill per group, where over
dimensions, post-aggregations and having. Bad values get their exact 400."""
import datetime
import json
import math
import os
import random
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce, stop_all  # noqa: E402
from model import assert_rows, expected, expected_gran  # noqa: E402

START = 1772668800   # 2026-03-05T00:00:00Z
SPAN = 28 * 86400
CUT = 1773165600     # 2026-03-10T18:00:00Z: the hour Asia/Kolkata's midnight cuts
STREAM = {"name": "web", "topic": "web", "time_field": "ts"}
BY_PAGE = {"name": "by_page", "stream": "web", "granularity": "minute",
           "dimensions": ["page", "country", "status"],
           "metrics": [{"name": "views", "type": "count"},
                       {"name": "bytes", "type": "sum", "field": "bytes"},
                       {"name": "slowest", "type": "max", "field": "ms"},
                       {"name": "avg_ms", "type": "avg", "field": "ms"}]}
HOURLY = {"name": "hourly", "stream": "web", "granularity": "hour",
          "dimensions": ["country"], "metrics": [{"name": "views", "type": "count"}]}
LATENCY = {"name": "latency", "stream": "web", "granularity": "minute", "dimensions": ["page"],
           "metrics": [{"name": "views", "type": "count"},
                       {"name": "lat", "type": "quantiles", "field": "ms"}]}
VIEWS = {"by_page": BY_PAGE, "hourly": HOURLY}


def ms(s):
    return str(int(datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()) * 1000)


def events(n, seed):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        e = {"ts": START + rnd.randrange(SPAN), "page": rnd.choice(["/a", "/b", "/c"]),
             "status": rnd.choice([200, 200, 200, 404, 500, 503]),
             "bytes": rnd.randrange(5000), "ms": rnd.randrange(1, 2000)}
        if rnd.random() < 0.9:
            e["country"] = rnd.choice(["DE", "US", "FR"])
        out.append(json.dumps(e))
    return out


def kb_per_view(m):
    return m["bytes"] / m["views"] / 1024 if m["views"] else None


def server_error(m):
    return lambda d: d["status"] is not None and int(d["status"]) >= 500 and d["country"] in m


# (view, parameters, the model's where/post/having for the expressions)
QUERIES = [
    ("by_page", {"granularity": "day", "tz": "Europe/Berlin", "group_by": "country"}, {}),
    ("by_page", {"granularity": "day", "tz": "America/New_York", "metrics": "views,bytes,slowest",
                 "from": "2026-03-06T00:00:00-05:00", "to": "2026-03-12T00:00:00-04:00",
                 "fill": "zero", "group_by": "page"}, {}),
    ("by_page", {"granularity": "week", "tz": "Europe/Berlin", "group_by": "page"}, {}),
    ("by_page", {"granularity": "month", "tz": "Europe/Berlin", "metrics": "views,avg_ms"}, {}),
    ("by_page", {"granularity": "week", "metrics": "views"}, {}),
    ("by_page", {"granularity": "15m", "from": ms("2026-03-29T00:00:00Z"),
                 "to": ms("2026-03-29T06:00:00Z"), "fill": "null", "group_by": "page",
                 "metrics": "views,avg_ms"}, {}),
    ("by_page", {"granularity": "6h", "tz": "Europe/Berlin", "from": "2026-03-28T12:00:00Z",
                 "to": "2026-03-30T12:00:00Z", "metrics": "views,bytes"}, {}),
    ("by_page", {"granularity": "7d", "group_by": "country", "metrics": "views"}, {}),
    ("by_page", {"granularity": "auto", "max_points": "100", "from": ms("2026-03-05T00:00:00Z"),
                 "to": ms("2026-04-02T00:00:00Z"), "metrics": "views"}, {}),
    ("by_page", {"granularity": "auto", "max_points": "30", "tz": "Europe/Berlin",
                 "from": "2026-03-05T00:00:00Z", "to": "2026-04-02T00:00:00Z", "fill": "zero",
                 "metrics": "views,slowest"}, {}),
    ("hourly", {"granularity": "auto", "max_points": "2000", "from": "2026-03-05T00:00:00Z",
                "to": "2026-04-02T00:00:00Z"}, {}),
    ("by_page", {"granularity": "day", "tz": "Asia/Kolkata", "from": "2026-03-10T00:00:00Z",
                 "to": "2026-03-12T00:00:00Z", "metrics": "views"}, {}),
    ("by_page", {"granularity": "day", "group_by": "country",
                 "where": "status >= 500 and country in ('DE', 'US')"},
     {"qwhere": server_error(("DE", "US"))}),
    ("by_page", {"granularity": "all", "where": "country is null", "group_by": "page",
                 "metrics": "views,bytes"},
     {"qwhere": lambda d: d["country"] is None}),
    ("by_page", {"granularity": "day", "tz": "Europe/Berlin", "from": "2026-03-27T00:00:00+01:00",
                 "to": "2026-04-01T00:00:00+02:00", "fill": "zero", "group_by": "country",
                 "where": "page = '/a'", "metrics": "views"},
     {"qwhere": lambda d: d["page"] == "/a"}),
    ("by_page", {"granularity": "day", "tz": "Europe/Berlin", "group_by": "page",
                 "metrics": "views,bytes,kb_per_view=bytes/views/1024", "having": "views > 20",
                 "order_by": "kb_per_view", "limit": "10"},
     {"qpost": {"kb_per_view": kb_per_view}, "qhaving": lambda m: m["views"] > 20}),
    ("by_page", {"granularity": "week", "group_by": "page,country",
                 "metrics": "share=round(avg_ms / slowest, 3)", "having": "views >= 30 and share < 0.6",
                 "order_by": "share", "order": "asc"},
     {"qpost": {"share": lambda m: None if m["slowest"] is None else
                round_half_away(m["avg_ms"] / m["slowest"], 3)},
      "qhaving": lambda m: m["views"] >= 30 and m["share"] is not None and m["share"] < 0.6}),
]


def round_half_away(x, digits):
    """round(x, digits) as lambdad's expression language documents it:
    half away from zero."""
    scaled = x * 10 ** digits
    a = abs(scaled)
    r = math.floor(a)
    if a - r >= 0.5:   # exact: a double minus its floor
        r += 1
    return math.copysign(r, scaled) / 10 ** digits


class QueryFeaturesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("query-features")
        cls.broker = Devbroker(["web:2"])
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=[STREAM],
                       views=[BY_PAGE, HOURLY, LATENCY]).start()
        cls.first = events(1200, seed=12)
        cls.first.append(json.dumps({"ts": CUT + 600, "page": "/a", "country": "DE",
                                     "status": 200, "bytes": 1, "ms": 1}))
        cls.second = events(1200, seed=13)

    @classmethod
    def tearDownClass(cls):
        stop_all(cls)

    def check_all(self, payloads, what):
        for view, q, model_args in QUERIES:
            body = self.d.query(view, **q)
            self.assertEqual(body["granularity"], expected_gran(VIEWS[view], **q), (what, q))
            model_q = {k: v for k, v in q.items() if k not in ("where", "having")}
            want = expected(payloads, STREAM, VIEWS[view], **model_args, **model_q)
            self.assertGreater(len(want), 1, q)   # every question has an answer to compare
            assert_rows(body["rows"], want, "%s: %s %s" % (what, view, q))

    def error(self, view, params, status, message):
        path = "/v1/views/%s/query?%s" % (view, urllib.parse.urlencode(params))
        s, body = self.d.get(path)
        self.assertEqual((s, body), (status, {"error": {"status": status, "message": message}}),
                         params)

    def test_dashboard_queries(self):
        d = self.d
        produce(self.broker.bootstrap, "web", self.first)
        d.wait_archived(len(self.first))
        d.run_batch()
        produce(self.broker.bootstrap, "web", self.second)
        d.wait_archived(len(self.first) + len(self.second))
        payloads = self.first + self.second
        self.check_all(payloads, "segments and live rows")

        # the 23-hour day, rendered with its offsets
        rows = d.query("by_page", granularity="day", tz="Europe/Berlin", metrics="views",
                       **{"from": "2026-03-29T00:00:00+01:00", "to": "2026-03-31T00:00:00+02:00"},
                       fill="zero")["rows"]
        self.assertEqual([(r["time"], r["ts"]) for r in rows],
                         [("2026-03-29T00:00:00+01:00", 1774738800),
                          ("2026-03-30T00:00:00+02:00", 1774821600)])

        # the answer cache keys every parameter: tz changes the answer
        utc = d.query("by_page", granularity="day", metrics="views")
        berlin = d.query("by_page", granularity="day", metrics="views", tz="Europe/Berlin")
        self.assertNotEqual(utc["rows"], berlin["rows"])
        self.assertEqual(d.query("by_page", granularity="day", metrics="views"), utc)

        # Asia/Kolkata's midnight (18:30Z) cuts the hourly view's hours
        self.error("hourly", {"granularity": "day", "tz": "Asia/Kolkata",
                              "from": "2026-03-10T00:00:00Z", "to": "2026-03-11T00:00:00Z"}, 400,
                   "granularity 'day' in tz 'Asia/Kolkata' starts a bucket inside one of the "
                   "view's 'hour' buckets (at 2026-03-10T18:30:00Z); ask a view of a finer "
                   "granularity")
        self.error("by_page", {"tz": "Europe/Berln"}, 400,
                   "unknown time zone 'Europe/Berln' in tz (expected an IANA zone such as "
                   "Europe/Berlin)")
        self.error("hourly", {"granularity": "90m"}, 400,
                   "granularity '90m' is not a whole multiple of the view's 'hour'")
        self.error("hourly", {"granularity": "30m"}, 400,
                   "granularity '30m' is finer than the view's 'hour'")
        self.error("by_page", {"fill": "zero"}, 400,
                   "fill requires from and to (the buckets it fills)")
        self.error("by_page", {"fill": "zeros", "from": "1", "to": "2"}, 400,
                   "invalid fill 'zeros' (expected zero or null)")
        self.error("by_page", {"granularity": "auto", "from": "1", "to": "2"}, 400,
                   "granularity=auto requires max_points")
        self.error("by_page", {"from": ms("2026-03-05T00:00:00Z") + "x"}, 400,
                   "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339")
        self.error("by_page", {"where": "contry = 'DE'"}, 400,
                   "where: unknown dimension 'contry' at 1:1")
        self.error("by_page", {"having": "views > 1 and byts > 2"}, 400,
                   "having: unknown metric 'byts' at 1:15")
        self.error("by_page", {"metrics": "views,kb=bytes/vews"}, 400,
                   "metrics.kb: unknown metric 'vews' at 1:7")

        # a quantiles metric in expressions: through one quantile, which
        # need not be among those rendered
        rows = d.query("latency", granularity="day", group_by="page", quantiles="0.5",
                       metrics="lat,x=lat.p50*2,y=lat.p99", having="lat.p99 > lat.p50")["rows"]
        self.assertGreater(len(rows), 10)
        p99 = {(r["ts"], r["dims"]["page"]): r["metrics"]["lat"]["p99"] for r in
               d.query("latency", granularity="day", group_by="page", quantiles="0.99",
                       metrics="lat")["rows"]}
        for r in rows:
            m = r["metrics"]
            self.assertEqual(m["x"], m["lat"]["p50"] * 2, r)
            self.assertEqual(m["y"], p99[(r["ts"], r["dims"]["page"])], r)
        self.error("latency", {"metrics": "x=lat*2"}, 400,
                   "metrics.x: metric 'lat' has quantiles: name one, such as 'lat.p99'")

        d.run_batch()
        self.check_all(payloads, "all in segments")


if __name__ == "__main__":
    unittest.main()
