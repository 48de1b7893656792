"""End to end: a reload (SIGHUP) never interrupts the clients.

While clients keep asking (a query on one keep-alive connection, /readyz
on a new connection each time), the daemon is reloaded several times: with
a new view, with a changed token, and with a config that cannot start.
Every answer is a 200 (no refused connection, no 503), and the queries'
numbers equal the independent model throughout. A pause point holds one
reload in its gap (the old layers frozen, the new ones not built yet):
there, the answers are the ones of before the reload, /v1/status says
"reloading": true and /readyz is 200. Changing http.listen restarts the
server (the one setting the test has that a swap cannot take)."""
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, free_port, produce, wait_until  # noqa: E402
from model import assert_rows, expected  # noqa: E402

T0 = 1763892000
STREAM = {"name": "web", "topic": "web", "time_field": "ts"}
BY_PAGE = {"name": "by_page", "stream": "web", "granularity": "minute", "dimensions": ["page"],
           "metrics": [{"name": "n", "type": "count"}, {"name": "b", "type": "sum", "field": "bytes"}]}
BY_DAY = {"name": "by_day", "stream": "web", "granularity": "day", "dimensions": [],
          "metrics": [{"name": "n", "type": "count"}]}
QUERY = "/v1/views/by_page/query?granularity=all&group_by=page"


def events(n, start):
    return [json.dumps({"ts": start + i * 7, "page": "/p%d" % (i % 5), "bytes": i % 1000})
            for i in range(n)]


class Hammer(threading.Thread):
    """Asks until stopped; records every answer that is not a 200 with the
    expected body shape, and every connection error."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stopping, self.problems, self.answers = port, threading.Event(), [], 0

    def run(self):
        conn = None
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", QUERY, headers={"Cache-Control": "no-cache"})
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or "rows" not in json.loads(body):
                    self.problems.append("query: %d %r" % (r.status, body[:200]))
                ready = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                ready.request("GET", "/readyz")
                r2 = ready.getresponse()
                body2 = r2.read()
                ready.close()
                if r2.status != 200:
                    self.problems.append("readyz: %d %r" % (r2.status, body2[:200]))
                self.answers += 2
            except (OSError, http.client.HTTPException) as e:
                self.problems.append("connection: %r" % e)
                if conn is not None:
                    conn.close()
                conn = None


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("reload")
        self.broker = Devbroker(["web:2"])
        self.token = self.wd.file("token")
        with open(self.token, "w") as f:
            f.write("first-token\n")
        self.release = self.wd.file("release")
        self.d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[BY_PAGE],
                        extra={"http": {"auth": {"token_file": self.token}}})
        self.hammer = None

    def tearDown(self):
        if self.hammer:
            self.hammer.stopping.set()
            self.hammer.join(60)
        with open(self.release, "w"):
            pass   # a daemon still held at the pause point goes on (and stops)
        self.d.stop()
        self.broker.stop()
        self.wd.cleanup()

    def check(self, payloads, what):
        got = self.d.query("by_page", granularity="all", group_by="page")["rows"]
        assert_rows(got, expected(payloads, STREAM, BY_PAGE, granularity="all", group_by="page"), what)

    def reload(self, n):
        """SIGHUP, then waits for the n-th line of a finished reload."""
        self.d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.d.logtext().count("Reloaded ") + self.d.logtext().count(
            "Running the previous config again") >= n, 60, "reload %d" % n)

    def recompute_with(self, token):
        return self.d.request("POST", "/v1/admin/recompute", b"",
                              {"Authorization": "Bearer " + token})[0]

    def test_reloads_without_a_gap(self):
        d = self.d
        d.start(env={"LAMBDAD_PAUSEPOINT": "reload_frozen:" + self.release})
        first = events(400, T0)
        produce(self.broker.bootstrap, "web", first)
        d.wait_archived(400)
        self.check(first, "before any reload")
        self.hammer = Hammer(d.port)
        self.hammer.start()

        # 1: a new view and a new token; held in the gap first.
        with open(self.token, "w") as f:
            f.write("second-token\n")
        d.rewrite_config(views=[BY_PAGE, BY_DAY])
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(self.release + ".reached"), 30, "the reload's gap")
        more = events(300, T0 + 86400)
        produce(self.broker.bootstrap, "web", more)   # waits in Kafka until the new layers run
        answers = self.hammer.answers
        wait_until(lambda: self.hammer.answers >= answers + 20, 30, "answers in the gap")
        self.check(first, "in the gap: the answers of before the reload")
        self.assertTrue(d.status()["reloading"])
        self.assertEqual(d.status_of("/readyz"), 200)
        s, body = d.get("/v1/views/by_day/query")
        self.assertEqual((s, body["error"]["message"]), (404, "unknown view 'by_day'"))
        with open(self.release, "w"):
            pass
        wait_until(lambda: d.logtext().count("Reloaded ") >= 1, 60, "reload 1")
        d.wait_archived(700)
        self.check(first + more, "after reload 1")
        self.assertFalse(d.status()["reloading"])
        wait_until(lambda: d.status_of("/v1/views/by_day/query") == 200, 60, "the new view")
        got = d.query("by_day", granularity="all")["rows"]
        assert_rows(got, expected(first + more, STREAM, BY_DAY, granularity="all"), "the new view")
        self.assertEqual(self.recompute_with("first-token"), 401)
        self.assertEqual(self.recompute_with("second-token"), 202)

        # 2 and 3: plain reloads while events flow.
        for n in (2, 3):
            extra = events(100, T0 + 86400 * (n + 1))
            produce(self.broker.bootstrap, "web", extra)
            more += extra
            self.reload(n)
        d.wait_archived(900)
        self.check(first + more, "after reloads 2 and 3")

        # 4: a config that cannot start (its archive path is a directory's
        # child that cannot exist is refused at load; a view over an unknown
        # field starts fine, so: Kafka options librdkafka refuses are
        # refused before anything stops, and the old config keeps running.
        d.rewrite_config(kafka=dict(d.cfg["kafka"], options={"no.such.option": "1"}))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "Still running with the previous config" in d.logtext(), 30, "refusal")
        d.rewrite_config(kafka=dict(d.cfg["kafka"], options={"fetch.wait.max.ms": "10"}))

        self.hammer.stopping.set()
        self.hammer.join(60)
        self.assertGreater(self.hammer.answers, 100)
        self.assertEqual(sorted(set(self.hammer.problems)), [],
                         "clients saw errors during reloads (%d); log:\n%s"
                         % (len(self.hammer.problems), d.logtext()[-4000:]))
        self.check(first + more, "at the end")

    def test_listen_change_restarts_the_server(self):
        d = self.d
        d.start()
        first = events(100, T0)
        produce(self.broker.bootstrap, "web", first)
        d.wait_archived(100)
        new_port = free_port()
        d.rewrite_config(http=dict(d.cfg["http"], listen="127.0.0.1:%d" % new_port))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: d.logtext().count("Reloaded ") >= 1, 60, "the reload")
        self.assertIn("Reload: http.listen changed: the HTTP server restarts too", d.logtext())
        d.port = new_port
        wait_until(lambda: d.status_of("/readyz") == 200, 30, "the new port")
        self.check(first, "on the new port")

    def test_a_config_that_cannot_start_falls_back(self):
        """A config that passes the checks but whose layers cannot start (a
        CA file librdkafka reads only when its client is created): the
        previous config is started again beside the frozen one, clients see
        no error, and consuming goes on."""
        d = self.d
        d.start()
        first = events(200, T0)
        produce(self.broker.bootstrap, "web", first)
        d.wait_archived(200)
        self.hammer = Hammer(d.port)
        self.hammer.start()
        good = d.cfg["kafka"]
        d.rewrite_config(kafka=dict(good, options={"fetch.wait.max.ms": "10",
                                                   "security.protocol": "ssl",
                                                   "ssl.ca.location": self.wd.file("no-such-ca.pem")}))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "Running the previous config again" in d.logtext() or
                   "Could not restart" in d.logtext(), 60, "the fallback")
        self.assertIn("Failed to start consuming Kafka: cannot create Kafka consumer: ssl.ca.location failed", d.logtext())
        self.assertIn("Reload failed; going back to the previous config", d.logtext())
        self.assertNotIn("Reloaded ", d.logtext())
        more = events(100, T0 + 86400)
        produce(self.broker.bootstrap, "web", more)
        d.wait_archived(300)
        self.check(first + more, "after the fallback")
        self.hammer.stopping.set()
        self.hammer.join(60)
        self.assertGreater(self.hammer.answers, 0)
        self.assertEqual(sorted(set(self.hammer.problems)), [], "clients saw errors")

    def test_a_listen_address_in_use_falls_back(self):
        """The restart path: the new address is taken, so the server and
        layers start again from the previous config on the previous port."""
        d = self.d
        d.start()
        first = events(100, T0)
        produce(self.broker.bootstrap, "web", first)
        d.wait_archived(100)
        taken = socket.socket()
        try:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            d.rewrite_config(http=dict(d.cfg["http"], listen="127.0.0.1:%d" % port))
            d.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "Running the previous config again" in d.logtext() or
                       "Could not restart" in d.logtext(), 60, "the fallback")
        finally:
            taken.close()
        self.assertIn("Failed to start the HTTP server: cannot listen on 127.0.0.1:%d: "
                      "Address already in use" % port, d.logtext())
        self.assertIn("Reload failed; going back to the previous config", d.logtext())
        wait_until(lambda: d.status_of("/readyz") == 200, 30, "the previous port")
        self.check(first, "on the previous port")


if __name__ == "__main__":
    unittest.main()
