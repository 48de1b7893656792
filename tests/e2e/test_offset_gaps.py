"""End to end: Kafka deletes offsets lambdad still needed.

lambdad archives a first lot of events and stops. While it is down, so
much is produced that the devbroker drops the oldest messages of the
partition (its mock cluster keeps about 5 MiB per partition, like a topic's
retention.bytes), including offsets lambdad had not archived yet. At the
next start the gap is counted per partition in /v1/status and /metrics,
logged once with the range of missing offsets, the archive's position moves
past it, and every event Kafka still had is counted exactly once."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce, wait_until  # noqa: E402

STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_s"}
VIEWS = [{"name": "totals", "stream": "pageviews", "granularity": "minute",
          "metrics": [{"name": "events", "type": "count"}]}]
T0 = 1763892000
FIRST, SECOND = 100, 8000   # 8000 x ~1 KB: well over what the devbroker keeps


def events(start, n):
    return ['{"ts":%d,"n":%d,"pad":"%s"}' % (T0 + i % 600, i, os.urandom(500).hex())
            for i in range(start, start + n)]


def first_offset(bootstrap, topic):
    """The partition's log start offset: the offset of its oldest message."""
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning",
                        "-c", "1", "-e", "-f", "%o\n"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[0])


class OffsetGapTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("offsetgaps")
        self.broker = Devbroker(["pageviews:1"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=VIEWS)

    def tearDown(self):
        self.d.stop()
        self.broker.stop()
        self.wd.cleanup()

    def test_gap_is_counted_logged_and_skipped_once(self):
        d, bootstrap = self.d, self.broker.bootstrap
        d.start()
        produce(bootstrap, "pageviews", events(0, FIRST))
        d.wait_archived(FIRST)
        self.assertEqual(d.stop(), 0)

        produce(bootstrap, "pageviews", events(FIRST, SECOND))
        lo = first_offset(bootstrap, "pageviews")
        self.assertGreater(lo, FIRST, "the devbroker kept every message: no gap to test")
        kept = FIRST + SECOND - lo

        d.start()
        d.wait_archived(FIRST + kept)
        part = d.status()["speed"]["partitions"]["pageviews"][0]
        self.assertEqual(part["offsets_lost"], lo - FIRST)
        wait_until(lambda: d.status()["speed"]["partitions"]["pageviews"][0]["next_offset"]
                   == FIRST + SECOND, 30, "the position at the end of the log")
        m = re.search(r'^lambdad_kafka_offsets_lost_total\{topic="pageviews",partition="0"\} (\d+)$',
                      d.get_text("/metrics"), re.M)
        self.assertIsNotNone(m)
        self.assertEqual(int(m.group(1)), lo - FIRST)
        log = d.logtext()
        line = ("Kafka no longer holds offsets %d..%d of pageviews [0] (deleted by retention before "
                "lambdad archived them): %d message(s) lost" % (FIRST, lo - 1, lo - FIRST))
        self.assertEqual(log.count(line), 1, log[-3000:])
        self.assertEqual(log.count("Kafka no longer holds"), 1)
        rows = d.query("totals", granularity="all")["rows"]
        self.assertEqual([r["metrics"]["events"] for r in rows], [FIRST + kept])

        # The archive recorded the new position: a restart finds no gap again.
        self.assertEqual(d.stop(), 0)
        d.start()
        part = d.status()["speed"]["partitions"]["pageviews"][0]
        self.assertEqual(part["offsets_lost"], 0)
        self.assertEqual(part["next_offset"], FIRST + SECOND)
        self.assertEqual(d.status()["archive"]["events"], FIRST + kept)


if __name__ == "__main__":
    unittest.main()
