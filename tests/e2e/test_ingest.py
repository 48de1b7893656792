"""End to end: events produced over TCP to the devbroker are archived and
answered exactly, for many query shapes; malformed events land in the
archive's rejects table with the right reasons."""
import json
import os
import random
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce  # noqa: E402
from model import assert_rows, expected, rfc3339  # noqa: E402

BASE = 1763892000          # 2025-11-23T10:00:00Z
STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_s"}
VIEWS = [
    {"name": "by_page", "stream": "pageviews", "granularity": "minute",
     "dimensions": ["page", "country"],
     "metrics": [{"name": "views", "type": "count"},
                 {"name": "bytes", "type": "sum", "field": "bytes"},
                 {"name": "slowest", "type": "max", "field": "ms"},
                 {"name": "fastest", "type": "min", "field": "ms"},
                 {"name": "avg_ms", "type": "avg", "field": "ms"}]},
    {"name": "totals", "stream": "pageviews", "granularity": "second", "dimensions": [],
     "metrics": [{"name": "events", "type": "count"},
                 {"name": "bytes", "type": "sum", "field": "bytes"}]},
    {"name": "by_flag", "stream": "pageviews", "granularity": "hour",
     "dimensions": ["mobile", "status"],
     "metrics": [{"name": "n", "type": "count"}, {"name": "avg_ms", "type": "avg", "field": "ms"}]},
]
PAGES = ["/", "/home", "/products/1", "/products/2", "/cart", "/ünïcødé/页面", "/a b", "/q\"uote"]
COUNTRIES = ["DE", "FR", "US", "JP", "BR"]


def make_events(n, seed):
    """Accepted events with every kind of field value, and malformed ones
    (returned separately with their expected reject reason)."""
    rng = random.Random(seed)
    good, bad = [], []
    for i in range(n):
        ev = {}
        r = rng.random()
        ts = BASE + rng.randrange(0, 3 * 3600)
        if r < 0.03:
            ts = BASE - rng.randrange(1, 5) * 86400 - rng.randrange(0, 86400)   # days late
        form = rng.random()
        if form < 0.05:
            ev["ts"] = ts + 0.75            # fractional seconds
        elif form < 0.10:
            ev["ts"] = str(ts)              # string-encoded epoch
        else:
            ev["ts"] = ts
        ev["page"] = rng.choice(PAGES)
        c = rng.random()
        if c < 0.9:
            ev["country"] = rng.choice(COUNTRIES)
        elif c < 0.95:
            ev["country"] = None            # null dimension
        # else: missing dimension (also null)
        b = rng.random()
        if b < 0.8:
            ev["bytes"] = rng.randrange(100, 100000)
        elif b < 0.85:
            ev["bytes"] = "12"              # not a number: skipped for the metric
        elif b < 0.9:
            ev["bytes"] = rng.randrange(0, 1000) + 0.5
        if rng.random() < 0.95:
            ev["ms"] = rng.randrange(1, 2000)
        ev["mobile"] = rng.random() < 0.3
        ev["status"] = rng.choice([200, 200, 200, 404, 500])   # numbers as dimensions
        keys = list(ev.keys())
        rng.shuffle(keys)
        good.append(json.dumps({k: ev[k] for k in keys}, ensure_ascii=rng.random() < 0.5))
    kinds = [("{\"ts\": 1763892000, \"page\": ", "invalid_json"),
             ("[1,2,3]", "not_an_object"),
             ("\"just a string\"", "not_an_object"),
             ("{\"page\":\"/x\"}", "missing_time"),
             ("{\"ts\":null,\"page\":\"/x\"}", "missing_time"),
             ("{\"ts\":\"yesterday\",\"page\":\"/x\"}", "bad_time"),
             ("{\"ts\":true}", "bad_time"),
             ("{\"ts\":1763892000}}", "invalid_json"),
             ("{\"ts\":1763892000,\"page\":\"\xff\"}", "invalid_json")]
    for i in range(n // 50):
        bad.append(kinds[i % len(kinds)])
    return good, bad


class IngestTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("ingest")
        self.broker = Devbroker(["pageviews:4"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=VIEWS)

    def tearDown(self):
        self.d.stop()
        self.broker.stop()
        self.wd.cleanup()

    def test_queries_match_independent_expectation(self):
        good, bad = make_events(20000, seed=11)
        self.d.start()
        mixed = good + [p for p, _ in bad]
        random.Random(3).shuffle(mixed)
        produce(self.broker.bootstrap, "pageviews",
                [p.encode("latin-1") if "\xff" in p else p.encode() for p in mixed])
        self.d.wait_archived(len(good), len(bad))

        by_page, totals, by_flag = VIEWS
        shapes = [
            (totals, {"granularity": "all"}),
            (totals, {"granularity": "hour"}),
            (totals, {"granularity": "day"}),
            (totals, {"granularity": "month"}),
            (by_page, {}),
            (by_page, {"granularity": "all", "group_by": "country"}),
            (by_page, {"granularity": "hour", "group_by": "page,country"}),
            (by_page, {"granularity": "day", "group_by": "page", "filter": "country:DE,country:FR"}),
            (by_page, {"granularity": "all", "group_by": "page", "filter": "page:/ünïcødé/页面"}),
            (by_page, {"granularity": "all", "group_by": "page", "order_by": "views", "limit": "3"}),
            (by_page, {"granularity": "all", "group_by": "country", "order_by": "avg_ms",
                       "order": "asc"}),
            (by_page, {"granularity": "minute", "from": rfc3339(BASE + 600), "to": str(BASE + 1200),
                       "metrics": "bytes,views"}),
            (by_page, {"granularity": "hour", "to": str(BASE), "group_by": "country"}),  # late only
            (by_flag, {"granularity": "all", "group_by": "mobile,status"}),
            (by_flag, {"granularity": "all", "group_by": "status", "filter": "status:404,mobile:true"}),
        ]
        for view, q in shapes:
            got = self.d.query(view["name"], **q)
            want = expected(good, STREAM, view, **q)
            self.assertTrue(want, "shape %s selects nothing: a test that cannot fail" % q)
            self.assertEqual(got["view"], view["name"])
            self.assertEqual(got["granularity"], q.get("granularity", view["granularity"]))
            assert_rows(got["rows"], want, "%s %s" % (view["name"], q))
            self.assertEqual(got["watermark"]["live_events"], len(good))
        # the grand total, spelled out
        total = self.d.query("totals", granularity="all")["rows"]
        self.assertEqual(total[0]["metrics"]["events"], len(good))

        # rejects: on disk, one row per malformed message, with its reason
        st = self.d.status()
        self.assertEqual(st["archive"]["rejects"], len(bad))
        db = sqlite3.connect("file:%s?mode=ro" % self.d.cfg["archive"]["path"], uri=True)
        rows = db.execute("SELECT reason, raw FROM rejects").fetchall()
        db.close()
        got = sorted((r, bytes(raw)) for r, raw in rows)
        want = sorted((reason, p.encode("latin-1") if "\xff" in p else p.encode()) for p, reason in bad)
        self.assertEqual(got, want)

    def test_restart_gives_same_answers_and_resumes(self):
        good, _ = make_events(3000, seed=5)
        self.d.start()
        produce(self.broker.bootstrap, "pageviews", good[:2000])
        self.d.wait_archived(2000)
        before = self.d.query("by_page", granularity="hour", group_by="page,country")
        self.assertEqual(self.d.stop(), 0)
        self.d.start()
        after = self.d.query("by_page", granularity="hour", group_by="page,country")
        self.assertEqual(after["rows"], before["rows"])
        produce(self.broker.bootstrap, "pageviews", good[2000:])
        self.d.wait_archived(3000)
        q = {"granularity": "all", "group_by": "country"}
        assert_rows(self.d.query("by_page", **q)["rows"],
                    expected(good, STREAM, VIEWS[0], **q), "after restart")


if __name__ == "__main__":
    unittest.main(verbosity=2)
