"""End to end: derived fields, nested fields and filtered metrics.

A stream derives a section from the page, kilobytes from bytes, an error
flag from the status and the hour of day from the event time; views group
by them and by a nested field (geo.country) and count errors with a
`where`. Every answer equals the independent model (tests/e2e/model.py,
with the derived fields and conditions written in Python), live, after a
batch run and after kill -9. Then a reload changes the kilobyte formula:
the view that uses it is recomputed from the whole archive and answers with
the new formula; the view that does not is left alone."""
import os
import random
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce, wait_until  # noqa: E402
from model import MISSING, assert_rows, expected, lookup  # noqa: E402

T0 = 1763892000


def stream(kb_divisor):
    return {"name": "web", "topic": "web", "time_field": "ts",
            "fields": {"section": "split_part(page, '/', 2)",
                       "kb": "bytes / %d" % kb_divisor,
                       "is_error": "status >= 500",
                       "hour_of_day": "hour(ts)"}}


BY_SECTION = {"name": "by_section", "stream": "web", "granularity": "hour",
              "dimensions": ["section", "geo.country", "is_error"],
              "metrics": [{"name": "n", "type": "count"},
                          {"name": "errors", "type": "count", "where": "is_error"},
                          {"name": "kb", "type": "sum", "field": "kb"},
                          {"name": "big", "type": "count",
                           "where": "kb > 1 and page like '/shop/%'"},
                          {"name": "city_max_kb", "type": "max", "field": "kb",
                           "where": "geo.city is not null"}]}
BY_HOUR = {"name": "by_hour", "stream": "web", "granularity": "day",
           "dimensions": ["hour_of_day"], "metrics": [{"name": "n", "type": "count"}]}


def derive_with(kb_divisor):
    """The derived fields, in Python, from the README's definitions."""
    def derive(obj, ts):
        page, b, status = obj.get("page"), obj.get("bytes"), obj.get("status")
        parts = page.split("/") if isinstance(page, str) else []
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        return dict(obj, section=parts[1] if len(parts) >= 2 else ("" if parts else None),
                    kb=b / kb_divisor if number(b) else None,
                    is_error=status >= 500 if number(status) else None,
                    hour_of_day=(ts // 3600) % 24)
    return derive


WHERE = {
    "errors": lambda o: o["is_error"] is True,
    "big": lambda o: o["kb"] is not None and o["kb"] > 1 and isinstance(o.get("page"), str)
    and o["page"].startswith("/shop/"),
    "city_max_kb": lambda o: lookup(o, "geo.city") not in (MISSING, None),
}


def events(n, start, seed):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        e = {"ts": start + i * 97, "page": rnd.choice(["/shop/cart", "/shop/pay", "/blog/x",
                                                          "home", "/"]),
             "status": rnd.choice([200, 200, 404, 500, 503])}
        r = rnd.random()
        if r < 0.8:
            e["bytes"] = rnd.randrange(0, 5000)
        elif r < 0.9:
            e["bytes"] = "big"
        g = rnd.random()
        if g < 0.7:
            e["geo"] = {"country": rnd.choice(["DE", "FR", "US"])}
            if rnd.random() < 0.5:
                e["geo"]["city"] = rnd.choice(["Berlin", "Paris"])
        elif g < 0.8:
            e["geo"] = "DE"   # not an object: geo.country is missing
        out.append(e)
    import json
    return [json.dumps(e) for e in out]


QUERIES = [
    ("by_section", {"granularity": "all", "group_by": "section,geo.country,is_error"}),
    ("by_section", {"group_by": "section"}),
    ("by_hour", {"granularity": "all", "group_by": "hour_of_day"}),
]


class DerivedFieldsTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("derived")
        self.broker = Devbroker(["web:2"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[stream(1024)],
                        views=[BY_SECTION, BY_HOUR])

    def tearDown(self):
        self.d.stop()
        self.broker.stop()
        self.wd.cleanup()

    def check(self, payloads, kb_divisor, what):
        views = {"by_section": BY_SECTION, "by_hour": BY_HOUR}
        for view, q in QUERIES:
            got = self.d.query(view, **q)["rows"]
            want = expected(payloads, stream(kb_divisor), views[view],
                            derive=derive_with(kb_divisor), where=WHERE, **q)
            assert_rows(got, want, "%s: %s %s" % (what, view, q))

    def test_derived_nested_and_filtered(self):
        d, bootstrap = self.d, self.broker.bootstrap
        d.start()
        first = events(600, T0, seed=1)
        produce(bootstrap, "web", first)
        d.wait_archived(600)
        self.check(first, 1024, "live")
        self.assertEqual(d.get("/v1/views")[1]["views"][0]["metrics"][1],
                         {"name": "errors", "type": "count", "where": "is_error"})
        self.d.run_batch()
        self.check(first, 1024, "after a batch run")
        d.kill9()
        d.start()
        self.check(first, 1024, "after kill -9")
        more = events(200, T0 + 3600 * 20, seed=2)
        produce(bootstrap, "web", more)
        d.wait_archived(800)
        self.check(first + more, 1024, "more, live")

        # A changed derived field recomputes the view that uses it, from the
        # raw archive, and only that one.
        before = d.status()["views"]
        d.rewrite_config(streams=[stream(1000)])
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: d.logtext().count("Reloaded") >= 1, 20, "the reload")
        wait_until(lambda: d.status_of("/v1/views/by_section/query") == 200 and
                   d.status()["views"]["by_section"]["full_recomputes"] >= 1, 60,
                   "by_section recomputed")
        after = d.status()["views"]
        self.assertEqual(after["by_hour"]["full_recomputes"], 0)
        self.assertNotEqual(after["by_section"]["fingerprint"], before["by_section"]["fingerprint"])
        self.assertEqual(after["by_hour"]["fingerprint"], before["by_hour"]["fingerprint"])
        self.check(first + more, 1000, "after the reload")


if __name__ == "__main__":
    unittest.main()
