"""The batch layer end to end: answers stay exact (batch + pending + live)
through many batch runs while ingesting, late events are counted once
before and after their partition is recomputed, a changed view is
recomputed from the raw archive while an unchanged one is not, and a run
after new events for one day scans only that day."""
import json
import os
import random
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GEN, Daemon, Devbroker, Workdir, produce, spawn, wait_until  # noqa: E402
from model import assert_rows, expected  # noqa: E402

DAY = 86400
BASE = 1763856000   # 2025-11-23T00:00:00Z
STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_ms"}
BY_PAGE = {"name": "by_page", "stream": "pageviews", "granularity": "minute",
           "dimensions": ["page", "country"],
           "metrics": [{"name": "views", "type": "count"},
                       {"name": "bytes", "type": "sum", "field": "bytes"},
                       {"name": "slowest", "type": "max", "field": "ms"}]}
TOTALS = {"name": "totals", "stream": "pageviews", "granularity": "hour",
          "metrics": [{"name": "events", "type": "count"}, {"name": "ms", "type": "avg", "field": "ms"}]}


def events(n, seed, day_offsets=(0,), start=BASE):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = start + rng.choice(day_offsets) * DAY + rng.randrange(0, DAY)
        out.append(json.dumps({"ts": t * 1000 + rng.randrange(1000), "page": "/p%d" % rng.randrange(20),
                               "country": rng.choice(["DE", "FR", "US", "JP"]),
                               "bytes": rng.randrange(1, 10000), "ms": rng.randrange(1, 500)}))
    return out


class BatchTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("batch")
        self.broker = Devbroker(["pageviews:4"])
        self.d = None

    def tearDown(self):
        if self.d:
            self.d.stop()
        self.broker.stop()
        self.wd.cleanup()

    def daemon(self, views, interval_s=3600, name="lambdad"):
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=views,
                        extra={"batch": {"interval_s": interval_s, "partition": "day"}}, name=name)
        return self.d

    def check_shapes(self, payloads):
        for view, q in [(TOTALS, {"granularity": "all"}), (TOTALS, {"granularity": "day"}),
                        (BY_PAGE, {"granularity": "hour", "group_by": "country"}),
                        (BY_PAGE, {"granularity": "all", "group_by": "page,country"}),
                        (BY_PAGE, {"granularity": "day", "group_by": "page", "filter": "country:DE",
                                   "order_by": "bytes", "limit": "5"})]:
            want = expected(payloads, STREAM, view, **q)
            self.assertTrue(want)
            assert_rows(self.d.query(view["name"], **q)["rows"], want, "%s %s" % (view["name"], q))

    def test_exact_through_many_runs_while_ingesting(self):
        self.daemon([BY_PAGE, TOTALS], interval_s=1).start()
        n, rounds = 150000, 5
        per = n // rounds
        payloads, seen, last = [], [], 0
        for r in range(rounds):
            dump = self.wd.file("dump%d.txt" % r)
            gen = spawn([GEN, "--brokers", self.broker.bootstrap, "--topic", "pageviews",
                         "--count", str(per), "--rate", "25000", "--seed", str(4 + r),
                         "--time-format", "epoch_ms", "--start-time", str(BASE + r * per // 2),
                         "--step-ms", "500", "--late-share", "0.05", "--dump", dump, "--quiet"],
                        stderr=subprocess.PIPE)
            try:
                # A run asked for while the round is being produced (the
                # generator is rate-limited to over a second per round): at
                # least one run per round meets ingestion, however slow the
                # machine; the scheduled runs (one a second) come on top.
                self.d.run_batch()
                while gen.poll() is None:
                    rows = self.d.query("totals", granularity="all")["rows"]
                    total = rows[0]["metrics"]["events"] if rows else 0
                    self.assertGreaterEqual(total, last, "the total went down")
                    self.assertLessEqual(total, n, "more counted than produced")
                    seen.append(total)
                    last = total
                    time.sleep(0.05)
                self.assertEqual(gen.returncode, 0, gen.stderr.read())
            finally:
                if gen.poll() is None:
                    gen.kill()
            with open(dump) as f:
                payloads += [l.rstrip("\n") for l in f]
        self.d.wait_archived(n)
        st = self.d.run_batch()
        self.assertGreaterEqual(st["batch"]["runs"], rounds + 1, "a run per round and one at the end")
        self.assertEqual(st["views"]["totals"]["R"], st["archive"]["last_seq"])
        self.assertGreater(len(set(seen)), 3)
        # (how many of the repeated questions were answered by moving a
        # cached answer forward depends on the timing of commits and runs;
        # test_answers_moved_forward_by_deltas_are_exact counts them exactly)
        self.check_shapes(payloads)
        # the cached answer equals one computed afresh (another key: parameters reordered)
        q1 = self.d.get("/v1/views/by_page/query?granularity=hour&group_by=country")[1]
        q2 = self.d.get("/v1/views/by_page/query?group_by=country&granularity=hour")[1]
        for q in (q1, q2):   # a batch run (one a second) may swap in between: same data, new time
            q["watermark"].pop("batch_at")
        self.assertEqual(q1, q2)
        # everything is now in the batch views: nothing live or pending
        wm = self.d.query("totals", granularity="all")["watermark"]
        self.assertEqual(wm["live_events"], 0)
        self.assertEqual(wm["batch_seq"], st["archive"]["last_seq"])

    def cache_count(self, result):
        for line in self.d.get_text("/metrics").splitlines():
            if line.startswith('lambdad_query_cache_total{result="%s"}' % result):
                return int(line.split()[-1])
        return 0

    def test_answers_moved_forward_by_deltas_are_exact(self):
        """The answer cache moves a cached answer forward by the
        transactions applied since; every such answer equals the model's."""
        self.daemon([BY_PAGE, TOTALS]).start()
        shapes = [(TOTALS, {"granularity": "hour"}),
                  (BY_PAGE, {"granularity": "all", "group_by": "country"}),
                  (BY_PAGE, {"granularity": "day", "group_by": "page", "filter": "country:DE,country:FR",
                             "order_by": "bytes", "limit": "7"})]
        sent = []
        for step in range(6):
            batch = events(700, 100 + step, day_offsets=(0, 1, 3))
            produce(self.broker.bootstrap, "pageviews", batch)
            sent += batch
            self.d.wait_archived(len(sent))
            before = self.cache_count("advance")
            for view, q in shapes:
                assert_rows(self.d.query(view["name"], **q)["rows"], expected(sent, STREAM, view, **q),
                            "step %d: %s %s" % (step, view["name"], q))
            if step > 0:   # asked before, and the state moved by applies only
                self.assertEqual(self.cache_count("advance") - before, len(shapes))
        self.d.run_batch() # a swap starts over: computed afresh, still exact
        for view, q in shapes:
            assert_rows(self.d.query(view["name"], **q)["rows"], expected(sent, STREAM, view, **q),
                        "after the batch run: %s %s" % (view["name"], q))

    def test_late_events_counted_once_before_and_after_recompute(self):
        self.daemon([BY_PAGE, TOTALS]).start()
        today = events(3000, 1, day_offsets=(10,))
        produce(self.broker.bootstrap, "pageviews", today)
        self.d.wait_archived(3000)
        self.d.run_batch()
        late = events(500, 2, day_offsets=(3, 5))   # days before everything else
        produce(self.broker.bootstrap, "pageviews", late)
        self.d.wait_archived(3500)
        self.check_shapes(today + late)             # at once, from the speed layer
        st = self.d.run_batch()
        self.assertEqual(st["views"]["totals"]["last_partitions"], 2)   # days 3 and 5 only
        self.assertEqual(st["views"]["totals"]["last_rows_scanned"], 500)
        self.check_shapes(today + late)             # after the recompute: still once
        self.d.run_batch()                          # an empty run changes nothing
        self.check_shapes(today + late)

        # Segments a run supersedes leave the segment cache when they are
        # deleted, not when its budget pushes them out.
        later = events(100, 3, day_offsets=(3,))
        produce(self.broker.bootstrap, "pageviews", later)
        self.d.wait_archived(3600)
        self.d.run_batch()                          # replaces day 3's segments (read above)
        self.check_shapes(today + late + later)     # reads the new ones
        st = self.d.run_batch()                     # deletes the old ones
        held = sum(v["batch_partitions"] for v in st["views"].values())
        self.assertEqual(held, 6)                   # days 3, 5 and 10 of both views
        self.assertLessEqual(st["segments"]["cache_entries"], held)

    def test_changed_view_is_recomputed_unchanged_view_is_not(self):
        self.daemon([BY_PAGE, TOTALS]).start()
        payloads = events(6000, 3, day_offsets=(0, 1, 2, 7))
        produce(self.broker.bootstrap, "pageviews", payloads)
        self.d.wait_archived(6000)
        self.d.run_batch()
        self.assertEqual(self.d.stop(), 0)

        changed = dict(BY_PAGE, dimensions=["country"],
                       metrics=BY_PAGE["metrics"] + [{"name": "fastest", "type": "min", "field": "ms"}])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[changed, TOTALS],
                        extra={"batch": {"interval_s": 3600, "partition": "day"}})
        self.d.start()
        st = wait_until(lambda: (lambda s: s if s["views"]["by_page"]["available"] else None)(
            self.d.status()), 60, "the changed view to be recomputed")
        self.assertIn("View 'by_page' changed definition; recomputing it in full", self.d.logtext())
        self.assertEqual(st["views"]["by_page"]["full_recomputes"], 1)
        self.assertEqual(st["views"]["by_page"]["rows_scanned_total"], 6000)
        self.assertEqual(st["views"]["totals"]["recomputes"], 0)       # unchanged: not recomputed
        self.assertEqual(st["views"]["totals"]["rows_scanned_total"], 0)
        for q in [{"granularity": "all", "group_by": "country"}, {"granularity": "day"}]:
            assert_rows(self.d.query("by_page", **q)["rows"], expected(payloads, STREAM, changed, **q),
                        "changed view %s" % q)
        assert_rows(self.d.query("totals", granularity="day")["rows"],
                    expected(payloads, STREAM, TOTALS, granularity="day"), "unchanged view")
        s, body = self.d.get("/v1/views/by_page/query?group_by=page")
        self.assertEqual(s, 400)
        self.assertEqual(body, {"error": {"status": 400, "message": "unknown dimension 'page' in group_by"}})

    def test_incremental_run_scans_only_the_touched_day(self):
        self.daemon([BY_PAGE, TOTALS]).start()
        history = events(30000, 4, day_offsets=tuple(range(30)))
        produce(self.broker.bootstrap, "pageviews", history)
        self.d.wait_archived(30000)
        st = self.d.run_batch()
        self.assertEqual(st["batch"]["last_rows_scanned"], 30000)
        fresh = events(400, 5, day_offsets=(17,))
        produce(self.broker.bootstrap, "pageviews", fresh)
        self.d.wait_archived(30400)
        st = self.d.run_batch()
        day17 = sum(1 for p in history if (json.loads(p)["ts"] // 1000 - BASE) // DAY == 17) + 400
        self.assertEqual(st["batch"]["last_rows_scanned"], day17)
        self.assertEqual(st["views"]["by_page"]["last_partitions"], 1)
        self.assertEqual(st["views"]["by_page"]["last_rows_scanned"], day17)
        self.check_shapes(history + fresh)

    def test_recompute_one_view_in_full_on_demand(self):
        self.daemon([BY_PAGE, TOTALS]).start()
        payloads = events(2000, 6, day_offsets=(0, 4))
        produce(self.broker.bootstrap, "pageviews", payloads)
        self.d.wait_archived(2000)
        self.d.run_batch()
        st = self.d.run_batch("totals")
        self.assertTrue(st["views"]["totals"]["last_full"])
        self.assertEqual(st["views"]["totals"]["last_rows_scanned"], 2000)
        self.assertEqual(st["views"]["by_page"]["full_recomputes"], 0)
        self.check_shapes(payloads)
        s, body, _ = self.d.request("POST", "/v1/admin/recompute?view=nope", b"")
        self.assertEqual((s, body), (404, {"error": {"status": 404, "message": "unknown view 'nope'"}}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
