"""Archive compaction and retention against the real daemon.

- Compaction merges the small chunks of many commits after a batch run:
  every answer (against the independent model), every archived event with
  its partition, offset and time (lambdad-archive dump), every stored next
  offset stay identical, every seq stays at or below R, and the archive
  verifies clean; a restart answers the same.
- A SIGKILL inside a merge's transaction (failpoint during_compaction)
  loses nothing: after the restart the archive holds every event once and
  the answers are exact; the next run compacts.
- Retention: with archive.retention and a view's retention, a batch run
  drops exactly the time partitions past the limits, from the archive
  (dump, status) and from the answers; a late event for a dropped
  partition is rejected with reason retention; a restart keeps it all.
"""
import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce, wait_until  # noqa: E402
from model import assert_rows, expected, rfc3339  # noqa: E402

ARCHTOOL = os.environ.get("LAMBDAD_ARCHIVE", "build/tools/lambdad-archive")
STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts"}
VIEW = {"name": "by_country", "stream": "pageviews", "granularity": "minute",
        "dimensions": ["country"], "metrics": [{"name": "n", "type": "count"},
                                               {"name": "b", "type": "sum", "field": "bytes"}]}
Q = {"granularity": "hour", "group_by": "country"}
DAY = 86400
# Many small commits: each is one chunk per (partition, day) it touches.
SMALL_COMMITS = {"batch": {"interval_s": 3600},
                 "archive": {"commit_interval_ms": 5, "commit_max_events": 40}}


def events(n, salt, base=1763892000):
    return [json.dumps({"ts": base + i * 11 - (DAY * 2 if i % 9 == 0 else 0),
                        "country": ["DE", "FR", "US", "JP"][(i + salt) % 4], "bytes": i + salt})
            for i in range(n)]


def archtool(*args):
    return subprocess.run([ARCHTOOL, *args], capture_output=True, text=True, timeout=120)


def dump(db):
    """Every archived event as (partition, offset, ts_ms, event) and the
    highest seq holding one."""
    r = archtool("dump", "--stream", "pageviews", "--meta", db)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    return (sorted((x["partition"], x["offset"], x["ts_ms"], json.dumps(x["event"], sort_keys=True))
                   for x in rows), max((x["seq"] for x in rows), default=0))


def stats(db):
    r = archtool("stats", db)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def offsets(db):
    with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as c:
        return sorted(c.execute("SELECT topic, part, next_offset FROM offsets").fetchall())


def verify(db):
    r = archtool("verify", db)
    assert r.returncode == 0, r.stdout + r.stderr


def groups(archived):
    """The (Kafka partition, day) groups of dump()'s events: what compaction
    leaves one chunk each of."""
    return {(p, ts_ms // 1000 // DAY) for p, _, ts_ms, _ in archived}


class MaintTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("maint")
        self.broker = Devbroker(["pageviews:2"])
        self.d = None

    def tearDown(self):
        try:
            if self.d:
                self.d.stop()
        finally:
            self.broker.stop()
            self.wd.cleanup()

    def test_compaction_keeps_everything(self):
        d = self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[VIEW],
                            extra=SMALL_COMMITS)
        db = d.cfg["archive"]["path"]
        d.start()
        first = events(3000, 1)
        # half to each partition: kcat's sticky partitioner may put every
        # event of a burst into one, and the chunk count below needs both
        produce(self.broker.bootstrap, "pageviews", first[:1500], partition=0)
        produce(self.broker.bootstrap, "pageviews", first[1500:], partition=1)
        d.wait_archived(3000)
        want = expected(first, STREAM, VIEW, **Q)
        assert_rows(d.query("by_country", **Q)["rows"], want, "before compaction")
        events_before, _ = dump(db)
        offsets_before = offsets(db)
        chunks_before = stats(db)["chunks"]
        self.assertGreater(chunks_before, 100)

        st = d.run_batch()
        R = st["batch"]["R"]
        comp = st["archive"]["compaction"]
        after = stats(db)
        # 2 partitions x 2 days: one chunk each is left
        self.assertEqual(len(groups(events_before)), 4)
        self.assertEqual(after["chunks"], 4)
        self.assertEqual(comp["chunks_compacted"] - comp["merges"], chunks_before - after["chunks"])
        self.assertLess(comp["bytes_after"], comp["bytes_before"])
        self.assertEqual(after["events"], 3000)
        self.assertIsNone(st["archive"]["maintenance_error"])
        self.assertTrue(st["archive"]["auto_vacuum"])
        metrics = d.get_text("/metrics")
        self.assertIn("\nlambdad_archive_chunks_compacted_total %d\n" % comp["chunks_compacted"],
                      metrics)
        self.assertIn("\nlambdad_archive_compaction_merges_total %d\n" % comp["merges"], metrics)
        self.assertEqual(after["last_seq"], R)
        events_after, max_seq = dump(db)
        self.assertEqual(events_after, events_before)
        self.assertLessEqual(max_seq, R)
        self.assertEqual(offsets(db), offsets_before)
        verify(db)
        assert_rows(d.query("by_country", **Q)["rows"], want, "after compaction")

        # more events on top, then a restart: recovery replays seq > R only
        second = events(1000, 2, base=1763892000 + 40000)
        produce(self.broker.bootstrap, "pageviews", second)
        d.wait_archived(4000)
        d.run_batch()   # compacts nothing: at most one pass a minute
        want = expected(first + second, STREAM, VIEW, **Q)
        assert_rows(d.query("by_country", **Q)["rows"], want, "after the second batch run")
        self.assertEqual(d.stop(), 0)
        d.start()
        assert_rows(d.query("by_country", **Q)["rows"], want, "after a restart")
        self.assertEqual(len(dump(db)[0]), 4000)
        verify(db)

    def test_crash_during_compaction(self):
        d = self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[VIEW],
                            extra=SMALL_COMMITS)
        db = d.cfg["archive"]["path"]
        d.start(env={"LAMBDAD_FAILPOINT": "during_compaction"})
        evs = events(2000, 3)
        produce(self.broker.bootstrap, "pageviews", evs)
        d.wait_archived(2000)
        before, _ = dump(db)
        chunks_before = stats(db)["chunks"]
        # the run swaps, then dies inside the first merge's transaction
        self.assertIn(d.request_at_failpoint("POST", "/v1/admin/recompute", b""), (202, None))
        d.proc.wait(timeout=60)
        self.assertIn("failpoint reached", d.logtext())
        d.log.close()
        self.assertEqual(stats(db)["chunks"], chunks_before)   # the merge rolled back
        self.assertEqual(dump(db)[0], before)

        d.start()
        d.wait_archived(2000)
        want = expected(evs, STREAM, VIEW, **Q)
        assert_rows(d.query("by_country", **Q)["rows"], want, "after the crash")
        st = d.run_batch()
        self.assertGreater(st["archive"]["compaction"]["merges"], 0)
        self.assertEqual(stats(db)["chunks"], len(groups(before)))
        self.assertEqual(dump(db)[0], before)
        verify(db)
        assert_rows(d.query("by_country", **Q)["rows"], want, "after compacting")

    def test_retention(self):
        broker = self.broker
        short = dict(VIEW, name="short", retention="2d")
        d = self.d = Daemon(self.wd, broker.bootstrap, streams=[STREAM], views=[VIEW, short],
                            extra={"batch": {"interval_s": 3600}})
        db = d.cfg["archive"]["path"]
        d.start()
        now = int(time.time())
        today = now - now % DAY
        # noon of each of the last 10 days (and today's first minutes)
        evs = [json.dumps({"ts": today - k * DAY + 43200 * (k > 0) + i,
                           "country": ["DE", "FR", "US"][i % 3], "bytes": i})
               for k in range(10) for i in range(50)]
        produce(broker.bootstrap, "pageviews", evs)
        d.wait_archived(500)
        d.run_batch()
        self.assertEqual(d.stop(), 0)

        # now with retention: 5 days for the archive (and so for every view)
        now = int(time.time())
        arch_cut = (now - 5 * DAY) - (now - 5 * DAY) % DAY
        with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as c:
            old_chunks = c.execute("SELECT count(*) FROM chunks WHERE tpart < ?",
                                   (arch_cut,)).fetchone()[0]
        d.cfg["archive"]["retention"] = "5d"
        d.rewrite_config()
        d.start()
        st = d.run_batch()
        now = int(time.time())
        view_cut = (now - 2 * DAY) - (now - 2 * DAY) % DAY
        kept = [e for e in evs if json.loads(e)["ts"] >= arch_cut]
        self.assertLess(len(kept), len(evs))
        self.assertEqual(st["archive"]["retention"]["dropped_events"], len(evs) - len(kept))
        self.assertEqual(st["archive"]["retention"]["dropped_chunks"], old_chunks)
        self.assertEqual(st["archive"]["retention_s"], 5 * DAY)
        self.assertEqual(st["views"]["short"]["retention_s"], 2 * DAY)
        self.assertEqual(st["views"]["by_country"]["retention_s"], 0)
        self.assertIsNone(st["archive"]["maintenance_error"])
        self.assertIn("Retention: dropped %d archived event(s) in %d chunk(s) of time partitions "
                      "before %s" % (len(evs) - len(kept), old_chunks, rfc3339(arch_cut)),
                      d.logtext())
        self.assertEqual(st["archive"]["oldest_partition"], rfc3339(arch_cut))
        self.assertEqual(st["views"]["by_country"]["oldest_partition"], rfc3339(arch_cut))
        self.assertEqual(st["views"]["short"]["oldest_partition"], rfc3339(view_cut))
        metrics = d.get_text("/metrics")
        self.assertIn("\nlambdad_archive_retention_dropped_events_total %d\n"
                      % (len(evs) - len(kept)), metrics)
        self.assertIn("lambdad_archive_oldest_partition_timestamp_seconds %d" % arch_cut, metrics)
        self.assertIn('lambdad_view_oldest_partition_timestamp_seconds{view="short"} %d'
                      % view_cut, metrics)

        def check(what):
            archived, _ = dump(db)
            self.assertEqual(sorted(x[3] for x in archived),
                             sorted(json.dumps(json.loads(e), sort_keys=True) for e in kept), what)
            self.assertEqual(stats(db)["events"], len(kept), what)
            assert_rows(d.query("by_country", **Q)["rows"], expected(kept, STREAM, VIEW, **Q), what)
            short_kept = [e for e in evs if json.loads(e)["ts"] >= view_cut]
            assert_rows(d.query("short", **Q)["rows"], expected(short_kept, STREAM, short, **Q),
                        what + " (view retention)")
        check("after retention")
        verify(db)

        # a late event for a dropped partition: rejected, reason retention
        late = json.dumps({"ts": today - 8 * DAY + 100, "country": "DE", "bytes": 1})
        produce(broker.bootstrap, "pageviews", [late])
        d.wait_archived(500, rejected=1)
        with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as c:
            self.assertEqual(c.execute("SELECT reason, raw FROM rejects").fetchall(),
                             [("retention", late.encode())])

        self.assertEqual(d.stop(), 0)
        d.start()
        check("after a restart")
        d.run_batch()
        check("after a restart and a batch run")


if __name__ == "__main__":
    unittest.main(verbosity=2)
