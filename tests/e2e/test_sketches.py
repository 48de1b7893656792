"""The sketch metrics end to end: distinct users and latency quantiles of a
view against the independent model (exact distinct counts while small,
within the stated error above; every quantile within the relative
accuracy), answers bit-identical before and after a batch run and after a
kill -9 restart, a minute view rolled up to days equal to a day view of
the same events, ordering by one quantile, and the query errors."""
import json
import os
import random
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce  # noqa: E402
from model import assert_sketch_rows, expected  # noqa: E402

DAY = 86400
BASE = 1763856000   # 2025-11-23T00:00:00Z
STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_ms"}
METRICS = [{"name": "views", "type": "count"},
           {"name": "users", "type": "distinct", "field": "user"},
           {"name": "latency", "type": "quantiles", "field": "ms"}]
BY_MINUTE = {"name": "by_minute", "stream": "pageviews", "granularity": "minute",
             "dimensions": ["page", "country"], "metrics": METRICS}
BY_DAY = {"name": "by_day", "stream": "pageviews", "granularity": "day",
          "dimensions": ["page", "country"], "metrics": METRICS}
EXACT_BELOW = 2048   # precision 14: explicit up to m/8 = 2048 values per cell
ACCURACY = 0.01


def events(n, seed):
    """Two days; users from a pool of 12000 (some numeric ids, some
    strings, a few missing or null); latencies heavy-tailed with zeros
    and a few negative clock-skew values."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = BASE + rng.randrange(0, 2) * DAY + rng.randrange(0, DAY)
        ev = {"ts": t * 1000 + rng.randrange(1000), "page": "/p%d" % rng.randrange(6),
              "country": rng.choice(["DE", "FR", "US", "JP"])}
        u = rng.randrange(12000)
        r = rng.random()
        if r < 0.02:
            ev["user"] = None
        elif r < 0.5:
            ev["user"] = u
        elif r < 0.99:
            ev["user"] = "u%d" % u
        r = rng.random()
        if r < 0.05:
            ev["ms"] = 0
        elif r < 0.07:
            ev["ms"] = -rng.randrange(1, 50)
        elif r < 0.99:
            ev["ms"] = round(rng.paretovariate(1.3) * 20, 3)
        out.append(json.dumps(ev))
    return out


class SketchTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("sketches")
        self.broker = Devbroker(["pageviews:2"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[BY_MINUTE, BY_DAY],
                        extra={"batch": {"interval_s": 3600, "partition": "day"}})

    def tearDown(self):
        self.d.stop()
        self.broker.stop()
        self.wd.cleanup()

    SHAPES = [
        (BY_MINUTE, {"granularity": "all"}),
        (BY_MINUTE, {"granularity": "day", "group_by": "country"}),
        (BY_MINUTE, {"granularity": "hour", "group_by": "page", "filter": "country:DE"}),
        (BY_MINUTE, {"granularity": "all", "group_by": "page,country", "quantiles": "0,0.25,0.999,1"}),
        (BY_DAY, {"granularity": "all", "group_by": "page"}),
    ]

    def answers(self):
        return [self.d.query(v["name"], **q)["rows"] for v, q in self.SHAPES]

    def test_sketches_against_the_model(self):
        self.d.start()
        payloads = events(24000, 7)
        produce(self.broker.bootstrap, "pageviews", payloads)
        self.d.wait_archived(len(payloads))
        first = self.answers()
        for (view, q), rows in zip(self.SHAPES, first):
            want = expected(payloads, STREAM, view, **q)
            qs = tuple(q.get("quantiles", "0.5,0.9,0.99").split(","))
            assert_sketch_rows(rows, want, "%s %s" % (view["name"], q), view, EXACT_BELOW,
                               ACCURACY, quantiles=qs)
        # both sides of the threshold were met: exact cells and estimated ones
        users = [r["metrics"]["users"] for rows in first for r in rows]
        self.assertTrue(min(users) <= EXACT_BELOW < max(users), users)

        # the minute view rolled up to days is the day view, bit for bit
        rolled = self.d.query("by_minute", granularity="day", group_by="page,country")["rows"]
        daily = self.d.query("by_day", granularity="day", group_by="page,country")["rows"]
        self.assertEqual(rolled, daily)

        # one quantile orders the answer
        top = self.d.query("by_minute", granularity="all", group_by="page,country",
                           quantiles="0.5,0.999", order_by="latency.p99.9", limit="5")["rows"]
        p999 = [r["metrics"]["latency"]["p99.9"] for r in top]
        self.assertEqual(len(p999), 5)
        self.assertEqual(p999, sorted(p999, reverse=True))
        allrows = self.d.query("by_minute", granularity="all", group_by="page,country",
                               quantiles="0.5,0.999")["rows"]
        self.assertEqual(p999, sorted((r["metrics"]["latency"]["p99.9"] for r in allrows),
                                      reverse=True)[:5])
        by_users = self.d.query("by_minute", granularity="all", group_by="country",
                                order_by="users", order="asc")["rows"]
        counts = [r["metrics"]["users"] for r in by_users]
        self.assertEqual(counts, sorted(counts))

        # errors name the problem
        for params, msg in [
                ({"order_by": "views.p99"},
                 "invalid order_by 'views.p99' is a count metric; only quantiles metrics have quantiles"),
                ({"order_by": "latency"},
                 "order_by metric 'latency' has quantiles: name one, such as 'latency.p99'"),
                ({"order_by": "latency.p95"},
                 "invalid order_by 'latency.p95': that quantile is not among the requested ones "
                 "(see quantiles)"),
                ({"quantiles": "0.5,1.5"},
                 "invalid quantile '1.5' in quantiles (expected a number from 0 to 1, such as 0.99)"),
                ({"quantiles": "0.5,0.50"}, "duplicate quantile '0.50' in quantiles")]:
            s, body = self.d.get("/v1/views/by_minute/query?" + urllib.parse.urlencode(params))
            self.assertEqual(s, 400, body)
            self.assertEqual(body["error"]["message"], msg)

        # the same bits after a batch run (segments) and after kill -9
        self.d.run_batch()
        self.assertEqual(self.answers(), first)
        self.d.kill9()
        self.d.start()
        self.assertEqual(self.answers(), first)
        # and once more events arrive on top of the segments, live and batch
        # parts merge to the model's answers again
        more = events(3000, 8)
        produce(self.broker.bootstrap, "pageviews", more)
        self.d.wait_archived(len(payloads) + len(more))
        for (view, q), rows in zip(self.SHAPES, self.answers()):
            qs = tuple(q.get("quantiles", "0.5,0.9,0.99").split(","))
            assert_sketch_rows(rows, expected(payloads + more, STREAM, view, **q),
                               "%s %s after more" % (view["name"], q), view, EXACT_BELOW,
                               ACCURACY, quantiles=qs)
        views = self.d.get("/v1/views")[1]["views"]
        self.assertEqual(views[0]["metrics"][1:], [
            {"name": "users", "type": "distinct", "field": "user", "precision": 14,
             "exact_up_to": EXACT_BELOW},
            {"name": "latency", "type": "quantiles", "field": "ms", "accuracy": ACCURACY}])


if __name__ == "__main__":
    unittest.main()
