"""lambdad backup under load, and restoring it.

While lambdad-gen produces and batch runs swap every second, lambdad
backup copies the archive and the views file. The copy is restored (the
two files copied to a new directory) and a daemon started on it with a new
port and no reachable broker, so it answers from the restored files alone.
Its answers must equal the model computed from Kafka itself (kcat, each
partition read up to the next offset the restored archive stores): exactly
what the original answered at the backup's watermark. The restored daemon
must use the backed-up segments (its R is the backup's) and replay the
archive after them.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GEN, LAMBDAD, Daemon, Devbroker, Workdir, free_port, spawn, wait_until  # noqa: E402
from model import assert_rows, expected  # noqa: E402

START = 1763856000   # 2025-11-23T00:00:00Z
STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_s"}
VIEWS = [{"name": "by_page", "stream": "pageviews", "granularity": "minute",
          "dimensions": ["page", "country"],
          "metrics": [{"name": "views", "type": "count"},
                      {"name": "bytes", "type": "sum", "field": "bytes"},
                      {"name": "slowest", "type": "max", "field": "ms"}]},
         {"name": "totals", "stream": "pageviews", "granularity": "hour",
          "metrics": [{"name": "events", "type": "count"},
                      {"name": "ms", "type": "avg", "field": "ms"}]}]
QUERIES = [("by_page", {"granularity": "hour", "group_by": "country"}),
           ("by_page", {"granularity": "all", "group_by": "page"}),
           ("totals", {"granularity": "day"}),
           ("totals", {})]
PARTITIONS = 2


def kafka_payloads(bootstrap, offsets):
    """The payloads of each partition below the given next offsets, read
    from Kafka with kcat (independent of lambdad)."""
    out = []
    for part, n in offsets.items():
        if n == 0:
            continue
        r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", "pageviews", "-p", str(part),
                            "-o", "beginning", "-c", str(n), "-e", "-q", "-f", "%s\\n"],
                           capture_output=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("kcat failed: %s" % r.stderr.decode(errors="replace"))
        lines = r.stdout.decode().splitlines()
        if len(lines) != n:
            raise AssertionError("partition %d: kcat read %d messages, wanted %d" % (part, len(lines), n))
        out += lines
    return out


def stored_offsets(archive):
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % archive, uri=True)
    try:
        return {p: n for t, p, n in db.execute("SELECT topic, part, next_offset FROM offsets")}
    finally:
        db.close()


class BackupTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("backup")
        self.broker = Devbroker(["pageviews:%d" % PARTITIONS])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=VIEWS,
                        extra={"batch": {"interval_s": 1, "partition": "hour"}})
        self.restored = None
        self.gen = None

    def tearDown(self):
        if self.gen and self.gen.poll() is None:
            self.gen.kill()
            self.gen.wait()
        for d in (self.d, self.restored):
            if d:
                d.stop()
        self.broker.stop()
        self.wd.cleanup()

    def backup(self, dest):
        # small steps: many of them while the daemon commits (the copy is one snapshot)
        r = subprocess.run([LAMBDAD, "backup", "-c", self.d.config_path, "--pages-per-step", "2", dest],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_backup_under_load_restores_exactly(self):
        self.d.start()
        self.gen = spawn([GEN, "--brokers", self.broker.bootstrap, "--topic", "pageviews",
                          "--count", "0", "--rate", "3000", "--seed", "5", "--start-time",
                          str(START), "--step-ms", "200", "--quiet"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # under load: events flowing and batch runs done
        wait_until(lambda: (lambda st: st["batch"]["R"] > 0 and st["archive"]["events"] > 3000)(
            self.d.status()), 60, "a batch run over flowing events")
        dest = self.wd.file("backup")
        out = self.backup(dest)
        after = self.d.status()["archive"]["events"]
        self.gen.terminate()
        self.gen.wait(timeout=30)
        m = re.search(r"archive seq <= (\d+)\n.*batch views cover seq <= (\d+)\n"
                      r"backup done in [0-9.]+ s, (\d+) step\(s\) of at most 2 pages\n$", out)
        self.assertTrue(m, out)
        A, R = int(m.group(1)), int(m.group(2))
        self.assertGreater(int(m.group(3)), 4)   # several per file
        self.assertGreater(R, 0)
        self.assertLessEqual(R, A)
        base = os.path.basename(self.d.cfg["archive"]["path"])
        self.assertEqual(sorted(os.listdir(dest)), [base, base + "-views"])   # no temporary left
        for name in (base, base + "-views"):
            self.assertEqual(os.stat(os.path.join(dest, name)).st_mode & 0o777, 0o600)

        # restore: the two files into a new directory, a daemon on them
        rdir = self.wd.file("restored")
        os.mkdir(rdir)
        for name in (base, base + "-views"):
            shutil.copy(os.path.join(dest, name), os.path.join(rdir, name))
        archive = os.path.join(rdir, base)
        offsets = stored_offsets(archive)
        self.assertEqual(sorted(offsets), list(range(PARTITIONS)))
        payloads = kafka_payloads(self.broker.bootstrap, offsets)
        self.assertGreaterEqual(after, len(payloads))

        self.restored = Daemon(self.wd, "127.0.0.1:%d" % free_port(), streams=[STREAM], views=VIEWS,
                               extra={"batch": {"interval_s": 3600, "partition": "hour"}},
                               name="restored")
        self.restored.cfg["archive"]["path"] = archive
        self.restored.rewrite_config()
        self.restored.start(wait_ready=False)   # no broker: never ready, but it answers
        wait_until(lambda: self.restored.status_of("/v1/views/totals/query") == 200, 60,
                   "the restored daemon to recover")
        st = self.restored.status()
        self.assertEqual(st["archive"]["events"], len(payloads))
        self.assertEqual(st["batch"]["R"], R)   # the backed-up segments, not a rebuild
        for view, q in QUERIES:
            v = next(v for v in VIEWS if v["name"] == view)
            ans = self.restored.query(view, **q)
            self.assertEqual(ans["watermark"]["batch_seq"], R)
            assert_rows(ans["rows"], expected(payloads, STREAM, v, **q), "restored %s %s" % (view, q))
        live = self.restored.query("totals", granularity="all")["watermark"]["live_events"]
        print("backup at archive seq %d, views R %d; %d events restored (%d after R), %d archived "
              "by the original when the backup ended" % (A, R, len(payloads), live, after))

    def run_backup(self, *args, config=None):
        r = subprocess.run([LAMBDAD, "backup", "-c", config or self.d.config_path, *args],
                           capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout, r.stderr

    def test_archive_alone_and_errors(self):
        archive = self.d.cfg["archive"]["path"]
        dest = self.wd.file("backup")
        rc, out, err = self.run_backup(dest)
        self.assertEqual((rc, out, err), (1, "", "lambdad backup: no archive at %s\n" % archive))

        # an archive without a views file yet (imported, no daemon ever ran): the archive
        # alone, and a views file left in DEST by an earlier backup goes
        history = self.wd.file("h.jsonl")
        with open(history, "w") as f:
            f.write("".join('{"ts":%d,"page":"/p"}\n' % (START + i) for i in range(5)))
        r = subprocess.run([LAMBDAD, "import", "-c", self.d.config_path, "--stream", "pageviews",
                            "-q", history], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        base = os.path.basename(archive)
        with open(os.path.join(dest, base + "-views"), "w") as f:   # made by the first try
            f.write("stale")
        rc, out, err = self.run_backup(dest)
        self.assertEqual((rc, err), (0, ""))
        self.assertRegex(out, r"^%s: \d+ bytes, archive seq <= 1\n\(no views file yet: a daemon "
                         r"started on this backup builds the views from the archive\)\n"
                         r"backup done in [0-9.]+ s, \d+ step\(s\) of at most 1024 pages\n$"
                         % re.escape(os.path.join(dest, base)))
        self.assertEqual(os.listdir(dest), [base])
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(dest, base), uri=True)
        try:
            self.assertEqual(db.execute("SELECT sum(n) FROM chunks").fetchone(), (5,))
        finally:
            db.close()

        rc, out, err = self.run_backup(os.path.dirname(archive))
        self.assertEqual((rc, err), (1, "lambdad backup: %s is the archive's own directory; back "
                                        "up elsewhere\n" % os.path.dirname(archive)))
        rc, out, err = self.run_backup("--pages-per-step", "0", dest)
        self.assertEqual((rc, err), (2, "lambdad backup: --pages-per-step: expected 1..1000000, "
                                        "got '0'\n"))


if __name__ == "__main__":
    unittest.main()
