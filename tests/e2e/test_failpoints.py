"""Crash at the exact steps of the exactness protocol (DESIGN.md): right
after an archive COMMIT before the events are applied, after a seal, with
the batch views written but not committed, and with them committed but not
yet swapped in. After each SIGKILL the restarted daemon answers exactly:
nothing lost, nothing counted twice."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce, wait_until  # noqa: E402
from model import assert_rows, expected  # noqa: E402

STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts"}
VIEW = {"name": "by_country", "stream": "pageviews", "granularity": "minute",
        "dimensions": ["country"], "metrics": [{"name": "n", "type": "count"},
                                               {"name": "b", "type": "sum", "field": "bytes"}]}
Q = {"granularity": "hour", "group_by": "country"}


def events(n, salt):
    return [json.dumps({"ts": 1763892000 + i * 11 - (86400 * 2 if i % 9 == 0 else 0),
                        "country": ["DE", "FR", "US", "JP"][(i + salt) % 4], "bytes": i + salt})
            for i in range(n)]


class FailpointTest(unittest.TestCase):
    def crash_at(self, point, batch_first):
        wd = Workdir("fp")
        broker = Devbroker(["pageviews:2"])
        d = Daemon(wd, broker.bootstrap, streams=[STREAM], views=[VIEW],
                   extra={"batch": {"interval_s": 3600}})
        try:
            d.start()
            first = events(2000, 1)
            produce(broker.bootstrap, "pageviews", first)
            d.wait_archived(2000)
            d.request("POST", "/v1/admin/recompute", b"")   # a clean run: batch views exist
            wait_until(lambda: d.status()["batch"]["runs"] >= 1, 30, "the first batch run")
            d.stop()

            d.start(env={"LAMBDAD_FAILPOINT": point})
            second = events(1500, 2)
            produce(broker.bootstrap, "pageviews", second)
            if batch_first:
                d.wait_archived(3500)
                # The run may reach the failpoint before the 202 is written.
                self.assertIn(d.request_at_failpoint("POST", "/v1/admin/recompute", b""), (202, None))
            d.proc.wait(timeout=60)          # it kills itself at the failpoint
            self.assertIn("failpoint reached", d.logtext())
            d.log.close()

            d.start()                        # no failpoint this time
            d.wait_archived(3500)
            assert_rows(d.query("by_country", **Q)["rows"], expected(first + second, STREAM, VIEW, **Q),
                        "after a crash at %s" % point)
            d.request("POST", "/v1/admin/recompute", b"")
            wait_until(lambda: d.status()["batch"]["runs"] >= 1, 30, "a batch run")
            assert_rows(d.query("by_country", **Q)["rows"], expected(first + second, STREAM, VIEW, **Q),
                        "after the next batch run")
        finally:
            try:
                d.stop()
            finally:
                broker.stop()
                wd.cleanup()

    def test_after_archive_commit(self):
        self.crash_at("after_archive_commit", batch_first=False)

    def test_after_seal(self):
        self.crash_at("after_seal", batch_first=True)

    def test_before_views_commit(self):
        self.crash_at("before_views_commit", batch_first=True)

    def test_before_swap(self):
        self.crash_at("before_swap", batch_first=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
