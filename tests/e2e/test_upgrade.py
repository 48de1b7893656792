"""The views file across versions and damage: a views file written by an
older lambdad (format 1: no format key, 40-byte cells) is emptied at start
and every view rebuilt from the archive; a segment damaged on disk is
found when a query reads it, and only its partition is rebuilt from the
archive (queries over that partition answer 503 meanwhile, the others
keep answering, never a wrong answer). The start never fails and the
answers are exact before and after."""
import json
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce, wait_until  # noqa: E402
from model import assert_rows, expected  # noqa: E402

STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts"}
VIEW = {"name": "by_country", "stream": "pageviews", "granularity": "minute",
        "dimensions": ["country"], "metrics": [{"name": "n", "type": "count"},
                                               {"name": "b", "type": "sum", "field": "bytes"},
                                               {"name": "avg", "type": "avg", "field": "ms"}]}
Q = {"granularity": "hour", "group_by": "country"}


def events(n, step=7):
    return [json.dumps({"ts": 1763892000 + i * step, "country": ["DE", "FR", "US"][i % 3],
                        "bytes": i, "ms": 0.1 * (i % 10)}) for i in range(n)]


def write_format1(path):
    """A views file as lambdad 0.1.0 wrote it, with a partition blob that
    the current code would misread if it tried."""
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
        "CREATE TABLE views(name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, unit TEXT NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE parts(view TEXT NOT NULL, start INTEGER NOT NULL, nrows INTEGER NOT NULL,"
        " data BLOB NOT NULL, PRIMARY KEY(view, start));"
        "INSERT INTO meta VALUES ('R', 1), ('at', 1763892000);")
    db.execute("INSERT INTO views VALUES ('by_country', 'ffffffffffffffff', 'day')")
    db.execute("INSERT INTO parts VALUES ('by_country', 1763856000, 1, ?)", (b"\x28\xb5\x2f\xfd" + b"\x00" * 40,))
    db.commit()
    assert db.execute("PRAGMA page_size").fetchone()[0] == 4096   # what a reset converts
    db.close()


class UpgradeTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("views-file")
        self.broker = Devbroker(["pageviews:2"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[VIEW],
                        extra={"batch": {"interval_s": 3600}})

    def tearDown(self):
        try:
            self.d.stop()
        finally:
            self.broker.stop()
            self.wd.cleanup()

    def archive_events(self, n, step=7):
        """Starts the daemon, archives n events, returns them."""
        evs = events(n, step)
        self.d.start()
        produce(self.broker.bootstrap, "pageviews", evs)
        self.d.wait_archived(n)
        return evs

    def test_format1_views_file_is_rebuilt(self):
        d = self.d
        evs = self.archive_events(3000)
        d.stop()
        views_file = d.cfg["archive"]["path"] + "-views"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(views_file + suffix):
                os.remove(views_file + suffix)
        write_format1(views_file)
        self.check_rebuilt(evs, views_file, 1)

    def test_format3_views_file_is_rebuilt(self):
        # Format 3 held segments of version 1 (core/segment.h): a file of
        # today's tables whose format key says 3 is emptied all the same.
        d = self.d
        evs = self.archive_events(3000)
        d.request("POST", "/v1/admin/recompute", b"")
        wait_until(lambda: d.status()["batch"]["runs"] >= 1, 60, "a batch run")
        d.stop()
        views_file = d.cfg["archive"]["path"] + "-views"
        db = sqlite3.connect(views_file)
        db.execute("UPDATE meta SET value = 3 WHERE key = 'format'")
        db.commit()
        db.close()
        self.check_rebuilt(evs, views_file, 3)

    def check_rebuilt(self, evs, views_file, old_format):
        d = self.d
        d.start()
        self.assertIn(f"written in format {old_format} by an older lambdad", d.logtext())
        want = expected(evs, STREAM, VIEW, **Q)
        wait_until(lambda: d.status_of("/v1/views/by_country/query?granularity=hour&group_by=country") == 200,
                   60, "the view to answer")
        assert_rows(d.query("by_country", **Q)["rows"], want, "after the upgrade")
        d.request("POST", "/v1/admin/recompute", b"")
        wait_until(lambda: d.status()["batch"]["runs"] >= 1, 60, "a batch run")
        assert_rows(d.query("by_country", **Q)["rows"], want, "after the first batch run")
        db = sqlite3.connect(views_file)
        self.assertEqual(db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0], 4)
        # emptied, it got a new file's pages: 2 KB, incremental vacuum
        self.assertEqual(db.execute("PRAGMA page_size").fetchone()[0], 2048)
        self.assertEqual(db.execute("PRAGMA auto_vacuum").fetchone()[0], 2)
        self.assertGreater(db.execute("SELECT count(*) FROM segments WHERE view = 'by_country'"
                                      " AND current = 1").fetchone()[0], 0)
        db.close()

    def test_damaged_segment_is_rebuilt_alone(self):
        # 3000 events 90 s apart from 2025-11-23T10:00Z: four day partitions.
        d = self.d
        evs = self.archive_events(3000, step=90)
        d.run_batch()
        d.stop()
        views_file = d.cfg["archive"]["path"] + "-views"
        db = sqlite3.connect(views_file)
        self.assertEqual(db.execute("PRAGMA page_size").fetchone()[0], 2048)   # a new file's
        before = db.execute("SELECT s.id, s.start, d.data FROM segments s JOIN segdata d USING (id)"
                            " WHERE s.view = 'by_country' AND s.current = 1 ORDER BY s.start").fetchall()
        self.assertEqual([r[1] for r in before], [1763856000 + k * 86400 for k in range(4)])
        sid, start, blob = before[1]   # 2025-11-24
        bad = bytearray(blob)
        bad[len(bad) // 2] ^= 0x10   # one bit, in the compressed minute rows
        db.execute("UPDATE segdata SET data = ? WHERE id = ?", (bytes(bad), sid))
        db.commit()
        db.close()

        d.start()
        # A query at the view's granularity reads the whole segment (coarser
        # ones read only the roll-ups stored first, which this bit does not
        # touch): it answers 503, and that partition alone is rebuilt.
        status, body, _ = d.request("GET", "/v1/views/by_country/query?granularity=minute")
        self.assertEqual((status, body), (503, {"error": {
            "status": 503, "message": "view is not available yet (recovering or recomputing); retry shortly"}}))
        self.assertIn("Segment %d of view 'by_country' (partition 2025-11-24T00:00:00Z) cannot be "
                      "read (damaged); rebuilding that partition from the archive" % sid, d.logtext())
        # The other partitions answer meanwhile (and exactly).
        day3 = {"granularity": "minute", "from": "2025-11-25T00:00:00Z", "to": "2025-11-26T00:00:00Z"}
        assert_rows(d.query("by_country", **day3)["rows"], expected(evs, STREAM, VIEW, **day3),
                    "another partition while the damaged one is rebuilt")
        st = wait_until(lambda: (lambda s: s if s["views"]["by_country"]["damaged_rebuilt"] >= 1
                                 and not s["batch"]["running"] else None)(d.status()),
                        60, "the damaged partition to be rebuilt")
        v = st["views"]["by_country"]
        self.assertEqual((v["damaged_rebuilt"], v["damaged_partitions"], v["last_partitions"],
                          v["partitions_total"], v["last_full"], v["full_recomputes"]),
                         (1, [], 1, 1, False, 0))
        self.assertEqual(st["segments"]["damaged"], 1)
        for q in (Q, {"granularity": "minute"}):
            assert_rows(d.query("by_country", **q)["rows"], expected(evs, STREAM, VIEW, **q),
                        "after the rebuild, %s" % q)
        metrics = d.get_text("/metrics")
        self.assertIn("lambdad_segments_damaged_total 1\n", metrics)
        self.assertIn('lambdad_view_damaged_partitions{view="by_country"} 0\n', metrics)
        self.assertEqual(d.logtext().count("cannot be read"), 1)
        # The views file: the other three segments are the same rows with
        # the same bytes; the damaged one has a successor.
        db = sqlite3.connect(views_file)
        after = db.execute("SELECT s.id, s.start, d.data FROM segments s JOIN segdata d USING (id)"
                           " WHERE s.view = 'by_country' AND s.current = 1 ORDER BY s.start").fetchall()
        db.close()
        self.assertEqual([after[k] for k in (0, 2, 3)], [before[k] for k in (0, 2, 3)])
        self.assertEqual(after[1][1], start)
        self.assertNotEqual(after[1][0], sid)


if __name__ == "__main__":
    unittest.main(verbosity=2)
