"""End to end: kill -9 the daemon at random moments (during ingestion,
batch runs and swaps) while lambdad-gen produces; after the last restart
every answer equals the expectation computed from the generator's dump:
nothing lost, nothing counted twice."""
import os
import random
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GEN, Daemon, Devbroker, Workdir, spawn  # noqa: E402
from model import assert_rows, expected  # noqa: E402

STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_ms"}
VIEWS = [
    {"name": "by_page", "stream": "pageviews", "granularity": "minute",
     "dimensions": ["page", "country"],
     "metrics": [{"name": "views", "type": "count"},
                 {"name": "bytes", "type": "sum", "field": "bytes"},
                 {"name": "slowest", "type": "max", "field": "ms"}]},
    {"name": "totals", "stream": "pageviews", "granularity": "second",
     "metrics": [{"name": "events", "type": "count"}]},
]
EVENTS = int(os.environ.get("CRASH_EVENTS", "200000"))
KILLS = int(os.environ.get("CRASH_KILLS", "10"))


class CrashTest(unittest.TestCase):
    def test_kill9_loop_is_exact(self):
        wd = Workdir("crash")
        broker = Devbroker(["pageviews:8"])
        d = Daemon(wd, broker.bootstrap, streams=[STREAM], views=VIEWS,
                   extra={"archive": {"commit_interval_ms": 20},
                          # batch runs every second: kills also land during runs and swaps
                          "batch": {"interval_s": 1}})
        gen = None
        try:
            d.start()
            dump = wd.file("events.txt")
            gen = spawn([GEN, "--brokers", broker.bootstrap, "--topic", "pageviews",
                         "--count", str(EVENTS), "--rate", "20000", "--seed", "42",
                         "--time-format", "epoch_ms", "--start-time", "1763892000",
                         "--step-ms", "7", "--late-share", "0.02", "--bad-share", "0.01",
                         "--compression", "lz4", "--dump", dump, "--quiet"],
                        stderr=subprocess.PIPE)
            rng = random.Random(1)
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.2, 1.2))
                d.kill9()
                d.start(wait_ready=False)
            _, err = gen.communicate(timeout=180)
            self.assertEqual(gen.returncode, 0, err)
            with open(dump, "rb") as f:
                payloads = [line.rstrip(b"\n").decode("utf-8", "replace") for line in f]
            self.assertEqual(len(payloads), EVENTS)
            want_total = expected(payloads, STREAM, VIEWS[1], granularity="all")
            accepted = want_total[0]["metrics"]["events"]
            d.wait_archived(accepted, EVENTS - accepted, timeout=120)
            for view, q in [(VIEWS[1], {"granularity": "all"}),
                            (VIEWS[1], {"granularity": "minute"}),
                            (VIEWS[0], {"granularity": "hour", "group_by": "country"}),
                            (VIEWS[0], {"granularity": "all", "group_by": "page"})]:
                assert_rows(d.query(view["name"], **q)["rows"],
                            expected(payloads, STREAM, view, **q), "%s %s" % (view["name"], q))
            st = d.status()
            self.assertGreater(st["batch"]["R"], 0, "no batch run survived the kills")
            # one more kill -9 at rest: recovery alone rebuilds the same answers
            before = d.query("by_page", granularity="hour", group_by="page,country")["rows"]
            d.kill9()
            d.start()
            self.assertEqual(d.query("by_page", granularity="hour", group_by="page,country")["rows"],
                             before)
        finally:
            if gen and gen.poll() is None:
                gen.kill()
            d.stop()
            broker.stop()
            wd.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
