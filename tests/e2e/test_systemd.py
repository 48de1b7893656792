"""Operations end to end: systemd notifications in order under a notify
socket of the test's own, one instance per archive, SIGHUP reloads (a new
view answers with full history; a bad config is refused), and /readyz
follows a broker outage without losing an event."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import LAMBDAD, Daemon, Devbroker, Workdir, produce, wait_until  # noqa: E402
from model import expected  # noqa: E402

STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts"}
BY_COUNTRY = {"name": "by_country", "stream": "pageviews", "granularity": "minute",
              "dimensions": ["country"], "metrics": [{"name": "n", "type": "count"}]}
BY_PAGE = {"name": "by_page", "stream": "pageviews", "granularity": "hour",
           "dimensions": ["page"], "metrics": [{"name": "n", "type": "count"},
                                               {"name": "b", "type": "sum", "field": "bytes"}]}


def events(n, start=1763892000, salt=0):
    return [json.dumps({"ts": start + i * 13, "country": ["DE", "FR", "US"][(i + salt) % 3],
                        "page": "/p%d" % ((i * 7 + salt) % 5), "bytes": i}) for i in range(n)]


class SystemdTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("systemd")
        self.broker = Devbroker(["pageviews:2"])
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[BY_COUNTRY],
                        extra={"kafka": {"unreachable_after_ms": 1500, "metadata_refresh_ms": 300}})

    def tearDown(self):
        try:
            self.d.stop()
        finally:
            self.broker.stop()
            self.wd.cleanup()

    def test_notify_order_ready_status_watchdog_stopping(self):
        path = self.wd.file("notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10)
        try:
            self.d.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
            msgs = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (
                    any(m.startswith("WATCHDOG=1") for m in msgs) and any("STATUS=" in m for m in msgs)):
                msgs.append(sock.recv(4096).decode())
            # recovery first asks for time, then READY, and only then watchdog pings
            self.assertEqual(msgs[0], "EXTEND_TIMEOUT_USEC=600000000\nWATCHDOG_USEC=600000000\n"
                                      "STATUS=Recovering: replaying the archive into the live views")
            self.assertEqual(msgs[1], "WATCHDOG_USEC=1000000")
            ready = [i for i, m in enumerate(msgs) if m.startswith("READY=1")]
            pings = [i for i, m in enumerate(msgs) if m.startswith("WATCHDOG=1")]
            self.assertEqual(len(ready), 1, msgs)
            self.assertTrue(pings and ready[0] < pings[0], msgs)
            status = [m for m in msgs if m.startswith("STATUS=") and "events/s" in m]
            self.assertTrue(status, msgs)
            self.assertRegex(status[0], r"^STATUS=\d+ events/s, lag \d+, \d+ archived, last batch run ")
            self.d.proc.send_signal(signal.SIGTERM)
            tail = []
            while True:
                m = sock.recv(4096).decode()
                tail.append(m)
                if m.startswith("STOPPING=1"):
                    break
            self.assertEqual(self.d.proc.wait(timeout=20), 0)
            self.assertTrue(all(m.startswith(("WATCHDOG=1", "STATUS=")) for m in tail[:-1]), tail)
        finally:
            sock.close()

    def test_second_instance_on_the_same_archive_refuses(self):
        self.d.start()
        r = subprocess.run([LAMBDAD, "-c", self.d.config_path], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Archive %s is in use by another lambdad (pid %d); refusing to start"
                      % (self.d.cfg["archive"]["path"], self.d.proc.pid), r.stderr)
        self.assertEqual(self.d.status()["archive"]["events"], 0)   # the first one is unharmed

    def test_sighup_adds_a_view_with_full_history_and_refuses_a_bad_config(self):
        self.d.start()
        first = events(3000)
        produce(self.broker.bootstrap, "pageviews", first)
        self.d.wait_archived(3000)
        s, _, _ = self.d.request("POST", "/v1/admin/recompute", b"")
        self.assertEqual(s, 202)
        wait_until(lambda: self.d.status()["batch"]["runs"] >= 1, 30, "a batch run")

        # a bad config is refused; the daemon keeps answering as before
        good_cfg = dict(self.d.cfg)
        self.d.rewrite_config(views=[dict(BY_COUNTRY, stream="nope")])
        self.d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "Reload refused" in self.d.logtext(), 10, "the refusal")
        self.assertIn("views[0].stream: unknown stream 'nope'", self.d.logtext())
        self.assertEqual(self.d.query("by_country", granularity="all")["rows"][0]["metrics"]["n"], 3000)
        # so is an option librdkafka does not know, before anything is stopped
        self.d.rewrite_config(views=good_cfg["views"],
                              kafka=dict(good_cfg["kafka"], options={"fetch.wait.max.msx": 5}))
        self.d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.d.logtext().count("Reload refused") == 2, 10, "the refusal")
        self.assertIn('Reload refused, %s: kafka.options["fetch.wait.max.msx"]: No such '
                      'configuration property: "fetch.wait.max.msx"' % self.d.config_path,
                      self.d.logtext())
        self.assertEqual(self.d.query("by_country", granularity="all")["rows"][0]["metrics"]["n"], 3000)

        # a new view, and a changed archive path that needs a restart
        self.d.rewrite_config(views=[BY_COUNTRY, BY_PAGE], kafka=good_cfg["kafka"],
                              archive=dict(good_cfg["archive"], path=self.wd.file("elsewhere.db")))
        self.d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "Reloaded" in self.d.logtext(), 20, "the reload")
        wait_until(lambda: self.d.status_of("/v1/views/by_page/query") == 200, 30, "the new view")
        q = {"granularity": "all", "group_by": "page"}
        self.assertEqual(self.d.query("by_page", **q)["rows"], expected(first, STREAM, BY_PAGE, **q))
        st = self.d.status()
        self.assertEqual(st["restart_required"], ["archive.path"])
        self.assertEqual(st["archive"]["path"], good_cfg["archive"]["path"])
        self.assertEqual(st["views"]["by_page"]["full_recomputes"], 1)
        # still ingesting, into both views
        more = events(1000, start=1763899000, salt=1)
        produce(self.broker.bootstrap, "pageviews", more)
        self.d.wait_archived(4000)
        self.assertEqual(self.d.query("by_page", **q)["rows"],
                         expected(first + more, STREAM, BY_PAGE, **q))
        self.assertEqual(self.d.stop(), 0)

    def test_reload_that_cannot_start_goes_back_to_the_previous_config(self):
        self.d.start()
        produce(self.broker.bootstrap, "pageviews", events(500))
        self.d.wait_archived(500)
        with socket.socket() as busy:      # the new config asks for a port in use
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            http = dict(self.d.cfg["http"], listen="127.0.0.1:%d" % busy.getsockname()[1])
            self.d.rewrite_config(http=http, views=[BY_COUNTRY, BY_PAGE])
            self.d.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "Reload failed; going back to the previous config" in self.d.logtext(),
                       30, "the failed reload")
        wait_until(lambda: self.d.status_of("/readyz") == 200, 30, "the previous config to run again")
        self.assertEqual(self.d.query("by_country", granularity="all")["rows"][0]["metrics"]["n"], 500)
        self.assertEqual(self.d.get("/v1/views/by_page/query")[0], 404)   # the new view did not land
        more = events(100, start=1763899000)
        produce(self.broker.bootstrap, "pageviews", more)
        self.d.wait_archived(600)
        self.assertEqual(self.d.stop(), 0)

    def test_readyz_follows_a_broker_outage_and_nothing_is_lost(self):
        self.d.start()
        before = events(1000)
        produce(self.broker.bootstrap, "pageviews", before)
        self.d.wait_archived(1000)
        self.assertEqual(self.d.get("/readyz")[0], 200)
        self.broker.proc.send_signal(signal.SIGUSR1)   # every broker down, data kept
        s, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(self.d.get("/readyz")),
                             30, "/readyz to say 503")
        self.assertRegex(body["error"]["message"], r"^Kafka brokers unreachable for \d+ s$")
        self.assertEqual(self.d.status()["archive"]["events"], 1000)   # queries still answer
        self.broker.proc.send_signal(signal.SIGUSR2)
        wait_until(lambda: self.d.status_of("/readyz") == 200, 60, "/readyz back to 200")
        after = events(1000, start=1763899000, salt=2)
        produce(self.broker.bootstrap, "pageviews", after)
        self.d.wait_archived(2000)
        q = {"granularity": "all", "group_by": "country"}
        self.assertEqual(self.d.query("by_country", **q)["rows"],
                         expected(before + after, STREAM, BY_COUNTRY, **q))


if __name__ == "__main__":
    unittest.main(verbosity=2)
