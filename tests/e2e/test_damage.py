"""End to end: one bit flipped on disk inside an archive chunk of a stopped
daemon (found in the file itself, where SQLite's integrity check cannot see
it) is reported, never silently skipped. After a restart and a recompute,
/v1/status names the damaged chunk with the exact number of unreadable
events, /metrics counts it, every query's watermark says how many events
it lacks, and the answers hold exactly the other events; another restart
still reports it (it is recorded in the archive), and lambdad-archive
verify names it and exits 1. And an archive written before checksums and
stored totals (schema version 1) is upgraded in place at start, with its
figures exact."""
import json
import os
import sqlite3
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce  # noqa: E402

ARCHTOOL = os.environ.get("LAMBDAD_ARCHIVE", "build/tools/lambdad-archive")
STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_s"}
VIEWS = [
    {"name": "totals", "stream": "pageviews", "granularity": "minute",
     "metrics": [{"name": "events", "type": "count"}]},
    {"name": "by_page", "stream": "pageviews", "granularity": "minute", "dimensions": ["page"],
     "metrics": [{"name": "views", "type": "count"}]},
]
T0 = 1763892000
BATCHES, PER_BATCH = 4, 150


def events(batch):
    """Distinct payloads (the padding makes zstd blobs of a few hundred bytes)."""
    return ['{"ts":%d,"page":"/p/%d","pad":"%s"}' % (T0 + batch * 60 + i % 60, i % 7,
                                                      ("%d-%d-" % (batch, i)) * 6)
            for i in range(PER_BATCH)]


def flip_bit_in_file(path, seq):
    """Flips one bit of chunk seq's stored blob in the database file itself
    (not through SQLite): finds a window from the middle of the blob in the
    file's bytes, where it must occur exactly once."""
    db = sqlite3.connect(path)
    blob = db.execute("SELECT data FROM chunk_data WHERE seq = ?", (seq,)).fetchone()[0]
    db.close()
    mid = len(blob) // 2
    window = blob[mid - 12:mid + 12]
    with open(path, "r+b") as f:
        data = f.read()
        at = data.find(window)
        assert at >= 0 and data.find(window, at + 1) < 0, "blob window not unique in the file"
        f.seek(at + 12)
        f.write(bytes([data[at + 12] ^ 0x10]))


class DamageTest(unittest.TestCase):
    def total(self, d, view="totals"):
        q = d.query(view, granularity="all")
        rows = q["rows"]
        metric = "events" if view == "totals" else "views"
        return (rows[0]["metrics"][metric] if rows else 0), q["watermark"]

    def test_flipped_bit_is_reported(self):
        wd = Workdir("damage")
        broker = Devbroker(["pageviews:2"])
        d = Daemon(wd, broker.bootstrap, streams=[STREAM], views=VIEWS,
                   extra={"batch": {"interval_s": 3600, "partition": "day"}})
        try:
            d.start()
            # one archive commit per batch: several chunks per partition
            for b in range(BATCHES):
                produce(broker.bootstrap, "pageviews", events(b))
                d.wait_archived((b + 1) * PER_BATCH)
            produced = BATCHES * PER_BATCH
            st = d.run_batch()
            self.assertEqual(st["batch"]["R"], st["archive"]["last_seq"])
            self.assertEqual(st["archive"]["damaged_chunks"], 0)
            self.assertEqual(st["archive"]["unreadable_events"], 0)
            self.assertEqual(st["archive"]["damaged"], [])
            n, wm = self.total(d)
            self.assertEqual(n, produced)
            self.assertNotIn("unreadable_events", wm)
            self.assertEqual(d.stop(), 0)

            # a chunk, its blob damaged on disk
            arch = d.cfg["archive"]["path"]
            db = sqlite3.connect(arch)
            chunks = db.execute("SELECT seq, part, first_offset, last_offset, n FROM chunks"
                                " ORDER BY seq").fetchall()
            db.close()
            # the batch run compacted them: one chunk per Kafka partition
            self.assertEqual(len(chunks), 2)
            seq, part, first, last, count = chunks[len(chunks) // 2]
            flip_bit_in_file(arch, seq)
            db = sqlite3.connect(arch)
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            db.close()

            # restart: the batch views were built before the damage and
            # still hold every event; nothing has read the chunk yet
            d.start()
            self.assertEqual(d.status()["archive"]["damaged_chunks"], 0)
            # a full recompute reads every chunk again: the damaged one is
            # reported, its events are missing, and the answers say so
            st = d.run_batch("totals")
            a = st["archive"]
            self.assertEqual(a["events"], produced)            # archived: all of them
            self.assertEqual(a["damaged_chunks"], 1)
            self.assertEqual(a["unreadable_events"], count)
            self.assertEqual(len(a["damaged"]), 1)
            dmg = a["damaged"][0]
            self.assertEqual((dmg["seq"], dmg["stream"], dmg["partition"], dmg["first_offset"],
                              dmg["last_offset"], dmg["events"], dmg["reason"]),
                             (seq, "pageviews", part, first, last, count, "checksum mismatch"))
            self.assertEqual(dmg["time_partition"], "2025-11-23T00:00:00Z")
            self.assertTrue(dmg["found_at"].endswith("Z"))
            n, wm = self.total(d)
            self.assertEqual(n, produced - count)
            self.assertEqual(wm["unreadable_events"], count)
            # the other view was not recomputed: still complete, but its
            # stream has unreadable events, which its watermark says
            _, wm = self.total(d, "by_page")
            self.assertEqual(wm["unreadable_events"], count)
            metrics = d.get_text("/metrics")
            self.assertIn("\nlambdad_archive_damaged_chunks_total 1\n", metrics)
            self.assertIn("\nlambdad_archive_unreadable_events %d\n" % count, metrics)
            log = d.logtext()
            self.assertEqual(log.count("damaged archive chunk %d " % seq), 1, log[-3000:])
            self.assertIn("offsets %d..%d, %d events" % (first, last, count), log)
            self.assertEqual(d.stop(), 0)

            # recorded in the archive: a restart still reports it, at once
            d.start()
            a = d.status()["archive"]
            self.assertEqual((a["damaged_chunks"], a["unreadable_events"]), (1, count))
            self.assertEqual(a["damaged"][0]["seq"], seq)
            self.assertIn("holds 1 damaged chunk(s) found earlier: %d event(s)" % count,
                          d.logtext())
            n, wm = self.total(d)
            self.assertEqual((n, wm["unreadable_events"]), (produced - count, count))
            self.assertEqual(d.stop(), 0)

            # and the tool names it
            r = subprocess.run([ARCHTOOL, "verify", arch], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("damaged chunk %d (stream 'pageviews', partition %d, offsets %d..%d, "
                          "%d events" % (seq, part, first, last, count), r.stdout)
            self.assertIn("1 damaged chunk (%d events unreadable)" % count, r.stdout)
            r = subprocess.run([ARCHTOOL, "stats", arch], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(json.loads(r.stdout)["events"], produced)
        finally:
            d.stop()
            broker.stop()
            wd.cleanup()

    def test_archive_of_version_1_is_upgraded(self):
        wd = Workdir("upgrade")
        broker = Devbroker(["pageviews:2"])
        d = Daemon(wd, broker.bootstrap, streams=[STREAM], views=VIEWS[:1])
        try:
            d.start()
            produce(broker.bootstrap, "pageviews", events(0) + ["not json"])
            d.wait_archived(PER_BATCH, 1)
            self.assertEqual(d.stop(), 0)
            arch = d.cfg["archive"]["path"]
            db = sqlite3.connect(arch)   # as lambdad 0.1.0 wrote it
            db.executescript("ALTER TABLE chunk_data DROP COLUMN checksum;"
                             "DROP TABLE damaged_chunks;"
                             "DELETE FROM meta WHERE key LIKE 'total_%';"
                             "PRAGMA user_version = 1;")
            db.close()

            d.start()
            self.assertIn("upgraded from schema version 1 to 2", d.logtext())
            self.assertIn("counted the totals of ", d.logtext())
            a = d.status()["archive"]
            self.assertEqual((a["events"], a["rejects"]), (PER_BATCH, 1))
            produce(broker.bootstrap, "pageviews", events(1))
            d.wait_archived(2 * PER_BATCH, 1)
            n, wm = self.total(d)
            self.assertEqual(n, 2 * PER_BATCH)
            self.assertEqual(d.stop(), 0)
            db = sqlite3.connect(arch)
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 2)
            old, new = db.execute("SELECT sum(checksum IS NULL), sum(checksum IS NOT NULL)"
                                  " FROM chunk_data").fetchone()
            self.assertGreater(old, 0)
            self.assertGreater(new, 0)
            db.close()
            r = subprocess.run([ARCHTOOL, "stats", arch], capture_output=True, text=True,
                               timeout=60)
            st = json.loads(r.stdout)
            self.assertEqual((st["events"], st["rejects"]), (2 * PER_BATCH, 1))
            r = subprocess.run([ARCHTOOL, "verify", arch], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("older without", r.stdout)
            self.assertTrue(r.stdout.endswith(": ok\n"), r.stdout)
        finally:
            d.stop()
            broker.stop()
            wd.cleanup()


if __name__ == "__main__":
    unittest.main()
