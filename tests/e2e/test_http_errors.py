"""Bad HTTP requests against the real daemon: the right status and the exact
JSON error body, and the daemon keeps answering afterwards."""
import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce  # noqa: E402

STREAM = {"name": "pageviews", "topic": "pageviews", "time_field": "ts"}
VIEW = {"name": "by_page", "stream": "pageviews", "granularity": "minute",
        "dimensions": ["page"], "metrics": [{"name": "views", "type": "count"},
                                            {"name": "bytes", "type": "sum", "field": "bytes"}]}


def err(status, msg):
    return {"error": {"status": status, "message": msg}}


class HttpErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("http")
        cls.broker = Devbroker(["pageviews:1"])
        cls.d = Daemon(cls.wd, cls.broker.bootstrap, streams=[STREAM], views=[VIEW]).start()
        produce(cls.broker.bootstrap, "pageviews",
                [json.dumps({"ts": 1763892000 + i, "page": "/p%d" % (i % 2), "bytes": i}) for i in range(10)])
        cls.d.wait_archived(10)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.broker.stop()
        cls.wd.cleanup()

    def check(self, method, path, status, body, data=None, headers=None):
        s, b, h = self.d.request(method, path, data, headers)
        self.assertEqual((s, b), (status, body), path)
        self.assertEqual(h.get("Content-Type"), "application/json")
        return h

    def test_bad_queries(self):
        q = "/v1/views/by_page/query?"
        self.check("GET", "/v1/views/nope/query", 404, err(404, "unknown view 'nope'"))
        self.check("GET", "/v2/x", 404, err(404, "no such endpoint: /v2/x"))
        self.check("GET", q + "group_by=country", 400, err(400, "unknown dimension 'country' in group_by"))
        self.check("GET", q + "filter=page", 400,
                   err(400, "malformed filter item 'page' (expected dimension:value)"))
        self.check("GET", q + "from=yesterday", 400,
                   err(400, "invalid 'from': expected epoch seconds, epoch milliseconds or RFC 3339"))
        self.check("GET", q + "from=20&to=10", 400, err(400, "'from' is after 'to'"))
        self.check("GET", q + "granularity=second", 400,
                   err(400, "granularity 'second' is finer than the view's 'minute'"))
        self.check("GET", q + "metrics=views&order_by=bytes", 400,
                   err(400, "order_by metric 'bytes' is not among the selected metrics"))
        self.check("GET", q + "limit=0", 400,
                   err(400, "invalid limit '0' (expected an integer from 1 to 1000000)"))
        self.check("GET", q + "bogus=1", 400, err(400, "unknown parameter 'bogus'"))
        self.check("GET", q + "limit=1&limit=2", 400, err(400, "duplicate parameter 'limit'"))
        self.check("GET", q + "x=" + "a" * 9000, 413, err(413, "query string too long (limit 8192 bytes)"))
        h = self.check("POST", "/v1/views", 405, err(405, "method POST not allowed on /v1/views"), data=b"")
        self.assertEqual(h.get("Allow"), "GET, HEAD")
        # still answering, with the right numbers
        got = self.d.query("by_page", granularity="all", group_by="page")["rows"]
        self.assertEqual(got, [{"dims": {"page": "/p0"}, "metrics": {"views": 5, "bytes": 20}},
                               {"dims": {"page": "/p1"}, "metrics": {"views": 5, "bytes": 25}}])

    def test_huge_body_is_refused(self):
        with socket.create_connection(("127.0.0.1", self.d.port), timeout=10) as s:
            s.sendall(b"POST /v1/views HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n")
            resp = s.recv(65536).decode()
        self.assertTrue(resp.startswith("HTTP/1.1 413"), resp)
        self.assertIn('{"error":{"status":413,"message":"request body too large (limit 1048576 bytes)"}}', resp)

    def test_slow_client_does_not_block_others(self):
        idle = [socket.create_connection(("127.0.0.1", self.d.port), timeout=10) for _ in range(4)]
        try:
            for s in idle:
                s.sendall(b"GET /v1/views HTTP/1.1\r\nHo")   # and then nothing
            s2, body = self.d.get("/v1/views")
            self.assertEqual(s2, 200)
            self.assertEqual(body["views"][0]["name"], "by_page")
        finally:
            for s in idle:
                s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
