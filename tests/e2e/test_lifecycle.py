"""Lifecycle end to end: SIGTERM stops cleanly and in bounded time even with
the broker gone; a topic that appears after start is picked up; SIGTERM in
the middle of ingestion loses nothing."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GEN, Daemon, Devbroker, Workdir, produce, spawn, wait_until  # noqa: E402
from model import expected  # noqa: E402

STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_s"}
VIEW = {"name": "totals", "stream": "pageviews", "granularity": "minute",
        "dimensions": ["country"], "metrics": [{"name": "n", "type": "count"}]}


def events(n, start=1763892000):
    return [json.dumps({"ts": start + i, "country": ["DE", "FR", "US"][i % 3]}) for i in range(n)]


class LifecycleTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("life")
        self.broker = None
        self.d = None

    def tearDown(self):
        if self.d:
            self.d.stop()
        if self.broker:
            self.broker.stop()
        self.wd.cleanup()

    def test_sigterm_with_broker_down_exits_promptly(self):
        self.broker = Devbroker(["pageviews:2"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[VIEW]).start()
        produce(self.broker.bootstrap, "pageviews", events(500))
        self.d.wait_archived(500)
        self.broker.stop()
        wait_until(lambda: "Kafka: _ALL_BROKERS_DOWN" in self.d.logtext(), 30,
                   "lambdad to see every broker down")
        t0 = time.monotonic()
        self.assertEqual(self.d.stop(timeout=20), 0)
        took = time.monotonic() - t0
        print("stopped %.2f s after SIGTERM with the broker down" % took)
        self.assertIn("Stopped cleanly", self.d.logtext())

    def test_topic_created_after_start_is_picked_up(self):
        # The devbroker has no such topic at start. (Its mock cluster creates
        # a topic on any metadata request, so the daemon's own lookup creates
        # it; a real broker would answer "unknown topic" until it exists.)
        self.broker = Devbroker([])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[VIEW]).start()
        produce(self.broker.bootstrap, "pageviews", events(300))
        self.d.wait_archived(300, timeout=30)
        rows = self.d.query("totals", granularity="all")["rows"]
        self.assertEqual(rows[0]["metrics"]["n"], 300)

    def test_archived_offsets_are_committed_to_kafka(self):
        # Lag tools read the group's committed offsets: they must equal what
        # lambdad archived. A real Kafka client joining the group (kcat -G)
        # starts there, so it must read exactly the messages produced after.
        self.broker = Devbroker(["pageviews:2"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[VIEW]).start()
        produce(self.broker.bootstrap, "pageviews", events(400))
        self.d.wait_archived(400)
        group = self.d.cfg["kafka"].get("group_id", "lambdad")
        self.assertEqual(self.d.stop(), 0)
        later = events(25, start=1763899000)
        produce(self.broker.bootstrap, "pageviews", later)
        r = subprocess.run(["kcat", "-b", self.broker.bootstrap, "-G", group, "-e", "-q",
                            "-f", "%s\n", "-X", "auto.offset.reset=earliest", "pageviews"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.splitlines()), sorted(later))

    def test_sigterm_mid_ingestion_loses_nothing(self):
        self.broker = Devbroker(["pageviews:4"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[VIEW]).start()
        dump = self.wd.file("dump.txt")
        gen = spawn([GEN, "--brokers", self.broker.bootstrap, "--topic", "pageviews",
                     "--count", "60000", "--rate", "30000", "--seed", "9", "--start-time",
                     "1763892000", "--dump", dump, "--quiet"], stderr=subprocess.PIPE)
        try:
            for _ in range(3):
                # stop once this run archived something (so mid-ingestion
                # while the generator runs), or the generator is done
                before = self.d.status()["archive"]["events"]
                wait_until(lambda: self.d.status()["archive"]["events"] > before
                           or gen.poll() is not None, 60, "ingestion to go on")
                self.assertEqual(self.d.stop(), 0)
                self.d.start()
            _, err = gen.communicate(timeout=120)
            self.assertEqual(gen.returncode, 0, err)
        finally:
            if gen.poll() is None:
                gen.kill()
        with open(dump) as f:
            payloads = [l.rstrip("\n") for l in f]
        want = expected(payloads, STREAM, VIEW, granularity="all", group_by="country")
        self.d.wait_archived(sum(r["metrics"]["n"] for r in want), 0)
        self.assertEqual(self.d.query("totals", granularity="all", group_by="country")["rows"], want)


if __name__ == "__main__":
    unittest.main(verbosity=2)
