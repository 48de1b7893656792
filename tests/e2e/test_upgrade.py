"""The views file across versions and damage: a views file written by an
older lambdad (format 1: no format key, 40-byte cells) is emptied at start
and every view rebuilt from the archive; a segment damaged on disk is
found when a query reads it, and its view is rebuilt from the archive
(503 meanwhile, never a wrong answer). The start never fails and the
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


def events(n):
    return [json.dumps({"ts": 1763892000 + i * 7, "country": ["DE", "FR", "US"][i % 3],
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

    def archive_events(self, n):
        """Starts the daemon, archives n events, returns them."""
        evs = events(n)
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
        self.assertGreater(db.execute("SELECT count(*) FROM segments WHERE view = 'by_country'"
                                      " AND current = 1").fetchone()[0], 0)
        db.close()

    def test_damaged_segment_is_rebuilt(self):
        d = self.d
        evs = self.archive_events(3000)
        d.request("POST", "/v1/admin/recompute", b"")
        wait_until(lambda: d.status()["batch"]["runs"] >= 1, 60, "a batch run")
        d.stop()
        views_file = d.cfg["archive"]["path"] + "-views"
        db = sqlite3.connect(views_file)
        sid, blob = db.execute("SELECT id, data FROM segdata ORDER BY id LIMIT 1").fetchone()
        bad = bytearray(blob)
        bad[len(bad) // 2] ^= 0x10   # one bit, in the compressed body
        db.execute("UPDATE segdata SET data = ? WHERE id = ?", (bytes(bad), sid))
        db.commit()
        db.close()

        d.start()
        want = expected(evs, STREAM, VIEW, **Q)
        # A query at the view's granularity reads the whole segment
        # (coarser ones read only the roll-ups stored first, which this
        # bit does not touch): the view is rebuilt, and every answer is
        # either a 503 or the exact one.
        status = d.status_of("/v1/views/by_country/query?granularity=minute")
        self.assertEqual(status, 503)
        wait_until(lambda: "cannot be read (damaged); rebuilding the view" in d.logtext(), 30,
                   "the damaged segment to be found")
        wait_until(lambda: d.status_of("/v1/views/by_country/query?granularity=hour&group_by=country") == 200,
                   60, "the rebuilt view to answer")
        assert_rows(d.query("by_country", **Q)["rows"], want, "after the rebuild")
        self.assertIn("lambdad_segments_damaged_total 1", d.get_text("/metrics"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
