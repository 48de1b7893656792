"""End to end: the archive's filesystem fills up while events arrive.

The archive lives on a small tmpfs; a filler file takes every free byte.
Then /readyz answers 503 at once with the archive's error, /v1/status says
the archive is not writable and why, /metrics has lambdad_archive_writable 0
and counts the failed commits, and ingestion pauses. Once the filler is
removed, ingestion resumes by itself and every event produced is counted
exactly once.

Mounting needs root (or CAP_SYS_ADMIN); without it the test is skipped
(exit 77, which meson reports as SKIP)."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce, wait_until  # noqa: E402

STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts", "time_format": "epoch_s"}
VIEWS = [{"name": "totals", "stream": "pageviews", "granularity": "minute",
          "metrics": [{"name": "events", "type": "count"}]}]
T0 = 1763892000
FIRST, SECOND = 200, 3000


def events(start, n):
    """Distinct payloads that compress badly, so the second lot needs new
    pages in the archive's WAL (a few hundred KB)."""
    return ['{"ts":%d,"page":"/p/%d","pad":"%s"}' % (T0 + i % 600, i % 7, os.urandom(60).hex())
            for i in range(start, start + n)]


def mount_tmpfs(path, size):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True, text=True)
    return r.returncode == 0


def fill(path):
    """Writes zeros to path until the filesystem is full."""
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        try:   # the last partial block
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


class DiskFullTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("diskfull")
        self.mnt = tempfile.mkdtemp(prefix="lambdad-e2e-tmpfs-")
        if os.geteuid() != 0 or not mount_tmpfs(self.mnt, "8m"):
            os.rmdir(self.mnt)
            self.wd.cleanup()
            print("cannot mount a tmpfs here (needs root): skipped")
            sys.exit(77)
        self.broker = Devbroker(["pageviews:1"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=VIEWS)
        self.d.cfg["archive"]["path"] = os.path.join(self.mnt, "archive.db")
        self.d.rewrite_config()

    def tearDown(self):
        self.d.stop()
        self.broker.stop()
        subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        os.rmdir(self.mnt)
        self.wd.cleanup()

    def metric(self, name):
        m = re.search(r"^%s (\S+)$" % name, self.d.get_text("/metrics"), re.M)
        self.assertIsNotNone(m, name)
        return float(m.group(1))

    def test_disk_full_pauses_and_resumes(self):
        d = self.d
        d.start()
        produce(self.broker.bootstrap, "pageviews", events(0, FIRST))
        d.wait_archived(FIRST)
        self.assertTrue(d.status()["archive"]["writable"])
        self.assertEqual(self.metric("lambdad_archive_writable"), 1)

        filler = os.path.join(self.mnt, "filler")
        fill(filler)
        produce(self.broker.bootstrap, "pageviews", events(FIRST, SECOND))

        # Unready with the archive's reason, as soon as a commit failed.
        reason = re.compile(r"archive writes failing for \d+ s \(ingestion paused\): "
                            r".*database or disk is full")
        wait_until(lambda: d.get("/readyz")[0] == 503, 30, "/readyz 503")
        s, body = d.get("/readyz")
        self.assertEqual(s, 503)
        self.assertRegex(body["error"]["message"], reason)
        a = d.status()["archive"]
        self.assertFalse(a["writable"])
        self.assertIn("database or disk is full", a["write_error"]["message"])
        self.assertRegex(a["write_error"]["since"], r"^\d{4}-\d\d-\d\dT")
        self.assertGreaterEqual(a["write_failures"], 1)
        self.assertLess(a["events"], FIRST + SECOND)
        self.assertEqual(self.metric("lambdad_archive_writable"), 0)
        self.assertGreaterEqual(self.metric("lambdad_archive_write_failures_total"), 1)
        self.assertEqual(self.metric("lambdad_ready"), 0)

        # Space returns: ingestion resumes by itself, nothing lost or doubled.
        os.unlink(filler)
        d.wait_archived(FIRST + SECOND)
        wait_until(lambda: d.get("/readyz")[0] == 200, 30, "/readyz 200 again")
        a = d.status()["archive"]
        self.assertTrue(a["writable"])
        self.assertIsNone(a["write_error"])
        rows = d.query("totals", granularity="all")["rows"]
        self.assertEqual([r["metrics"]["events"] for r in rows], [FIRST + SECOND])
        log = d.logtext()
        self.assertEqual(log.count("Archive commit of"), 1, "the failure is logged once")
        self.assertIn("Archive writes work again after", log)


if __name__ == "__main__":
    unittest.main()
