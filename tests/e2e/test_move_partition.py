"""End to end: moving a Kafka partition to a new instance (README, "Moving a
partition to a new instance"), step by step as the README says. One
devbroker topic of 4 partitions; shard a owns 0 and 1, shard b owns 2 and 3,
each the other's peer. Events go to explicit partitions in four rounds, with
a batch run after the first. Partition 3 moves to a new shard c:
lambdad-archive extract from b's live archive, c started on the extract
(owning 3, peers a and b) catches up from the extracted offset while more
events arrive; b is stopped, partition 3 dropped from its archive, a
reloaded with c among its peers, b restarted owning 2. Each window is
checked for what the README says of it (c doubles partition 3 before b
drops it; a answers 503 naming b, or partial without b, while b is down).
At the end every instance answers every query shape exactly as the
independent model (tests/e2e/model.py) over all the events produced: none
lost, none counted twice; each archive holds exactly its partitions'
events, each once, at offsets 0..n-1, and verifies clean."""
import collections
import json
import os
import signal
import subprocess
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Devbroker, Workdir, produce, wait_until  # noqa: E402
from model import assert_rows, expected  # noqa: E402
from test_cluster import BY_PAGE, SHAPES, STREAM, events  # noqa: E402

ARCHTOOL = os.environ.get("LAMBDAD_ARCHIVE", "build/tools/lambdad-archive")
PARTITIONS = 4


def archtool(*args):
    return subprocess.run([ARCHTOOL, *args], capture_output=True, text=True, timeout=120)


def peers(*members):
    return [{"url": "http://127.0.0.1:%d" % d.port, "shard": d.shard} for d in members]


class MovePartitionTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("move")
        self.broker = Devbroker(["web:%d" % PARTITIONS])
        self.started = []
        self.produced = {p: [] for p in range(PARTITIONS)}
        self.round = 0

    def tearDown(self):
        try:
            for d in self.started:
                if d.proc and d.proc.poll() is None:
                    rc = d.stop()
                    self.assertEqual(rc, 0, d.logtext()[-3000:])
        finally:
            self.broker.stop()
            self.wd.cleanup()

    def daemon(self, name, owned):
        d = Daemon(self.wd, self.broker.bootstrap, streams=[STREAM], views=[BY_PAGE], name=name,
                   extra={"kafka": {"group_id": name, "partitions": {"web": owned}}})
        d.shard = name
        return d

    def set_cluster(self, d, *others):
        d.rewrite_config(cluster={"shard": d.shard, "retry_after_ms": 200,
                                  "peers": peers(*others)})

    def start(self, d):
        d.start()
        if d not in self.started:
            self.started.append(d)

    def produce_round(self, n):
        """n more events, spread over the partitions in turn."""
        self.round += 1
        evs = events(n, 100 + self.round)
        for p in range(PARTITIONS):
            part = evs[p::PARTITIONS]
            produce(self.broker.bootstrap, "web", part, partition=p)
            self.produced[p] += part

    def count(self, parts):
        return sum(len(self.produced[p]) for p in parts)

    def payloads(self, parts=range(PARTITIONS)):
        return [e for p in parts for e in self.produced[p]]

    def query(self, d, q):
        return d.get("/v1/views/by_page/query?" + urllib.parse.urlencode(q))

    def check_shapes(self, d, parts=range(PARTITIONS), missing=None):
        for view, q, model_args in SHAPES:
            model_q = {k: v for k, v in q.items() if k not in ("where", "having")}
            want = expected(self.payloads(parts), STREAM, BY_PAGE, **model_args, **model_q)
            if missing:
                q = dict(q, partial="true")
            what = "%s on %s" % (q, d.shard)
            s, b = self.query(d, q)
            self.assertEqual(s, 200, (what, b))
            assert_rows(b["rows"], want, what)
            self.assertEqual(b.get("missing_shards"), missing, what)

    def check_archive(self, d, parts):
        """d's archive holds each event of its partitions once, at offsets
        0..n-1 of its partition, and nothing else; verify finds it clean."""
        r = archtool("dump", "--meta", d.cfg["archive"]["path"])
        self.assertEqual(r.returncode, 0, r.stderr)
        got = collections.defaultdict(list)
        for line in r.stdout.splitlines():
            m = json.loads(line)
            got[m["partition"]].append((m["offset"], json.dumps(m["event"])))
        self.assertEqual(sorted(got), sorted(parts), d.shard)
        for p in parts:
            offsets = sorted(o for o, _ in got[p])
            self.assertEqual(offsets, list(range(len(self.produced[p]))), (d.shard, p))
            self.assertEqual(collections.Counter(e for _, e in got[p]),
                             collections.Counter(json.dumps(json.loads(e))
                                                 for e in self.produced[p]), (d.shard, p))
        r = archtool("verify", d.cfg["archive"]["path"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(r.stdout.endswith(": ok\n"), r.stdout)

    def reload(self, d):
        n = d.logtext().count("Reloaded ")
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: d.logtext().count("Reloaded ") > n, 60, "%s to reload" % d.shard)

    def test_move_partition_3_to_a_new_shard(self):
        a, b = self.daemon("a", [0, 1]), self.daemon("b", [2, 3])
        self.set_cluster(a, b)
        self.set_cluster(b, a)
        self.start(a)
        self.start(b)
        self.produce_round(800)
        a.wait_archived(self.count([0, 1]))
        b.wait_archived(self.count([2, 3]))
        a.run_batch()
        b.run_batch()
        self.produce_round(400)
        a.wait_archived(self.count([0, 1]))
        b.wait_archived(self.count([2, 3]))

        # 1. extract partition 3 from b's archive while b runs
        c_db = self.wd.file("c.db")
        r = archtool("extract", "--partition", "web:3", b.cfg["archive"]["path"], c_db)
        self.assertEqual(r.returncode, 0, r.stderr)
        n3 = len(self.produced[3])
        # one commit: one chunk per time partition (day) of partition 3's events
        days = len({json.loads(e)["ts"] // 86400 for e in self.produced[3]})
        self.assertEqual(r.stdout, "%s: web:3 from %s: %d events in %d chunks, 0 rejects; next "
                         "offsets web:3=%d\n" % (c_db, b.cfg["archive"]["path"], n3, days, n3))

        # 2. c starts on the extract, owning 3, and catches up while more come
        c = self.daemon("c", [3])
        self.assertEqual(c.cfg["archive"]["path"], c_db)
        self.set_cluster(c, a, b)
        self.start(c)
        self.produce_round(400)
        c.wait_archived(self.count([3]))
        a.wait_archived(self.count([0, 1]))
        b.wait_archived(self.count([2, 3]))
        # a and b do not know c: exact; c asks b, which still owns 3: doubled
        self.check_shapes(a)
        self.check_shapes(b)
        total = self.query(c, {"granularity": "all"})[1]["rows"][0]["metrics"]["views"]
        self.assertEqual(total, self.count(range(PARTITIONS)) + self.count([3]))

        # 3. b stops; 3 is dropped from its archive; a answers without b only
        self.assertEqual(b.stop(), 0)
        path_b = b.cfg["archive"]["path"]
        before = json.loads(archtool("stats", path_b).stdout)
        r = archtool("drop", "--partition", "web:3", path_b)
        self.assertEqual(r.returncode, 0, r.stderr)
        after = json.loads(archtool("stats", path_b).stdout)
        self.assertEqual(after["events"], self.count([2]))
        self.assertEqual(r.stdout, "%s: dropped web:3: %d events in %d chunks, 0 rejects, 1 next "
                         "offset; removed %s-views (lambdad rebuilds its views from the archive "
                         "at its next start)\n" % (path_b, self.count([3]),
                                                    before["chunks"] - after["chunks"], path_b))
        self.assertFalse(os.path.exists(path_b + "-views"))
        s, body = self.query(a, {"granularity": "all"})
        self.assertEqual((s, body["error"]["message"]),
                         (503, "shard 'b' has no healthy replica (http://127.0.0.1:%d: Couldn't "
                          "connect to server); add partial=true for an answer without it"
                          % b.port))

        # 4. a learns of c before b comes back: never a window that misses 3
        self.set_cluster(a, b, c)
        self.reload(a)
        self.assertEqual(sorted(p["shard"] for p in a.status()["cluster"]["peers"]), ["b", "c"])
        self.check_shapes(a, parts=[0, 1, 3], missing=["b"])

        # 5. b restarts owning 2 only, its views rebuilt from what it kept
        b.rewrite_config(kafka=dict(b.cfg["kafka"], partitions={"web": [2]}))
        self.set_cluster(b, a, c)
        self.start(b)
        b.wait_archived(self.count([2]))
        self.produce_round(400)
        a.wait_archived(self.count([0, 1]))
        b.wait_archived(self.count([2]))
        c.wait_archived(self.count([3]))
        b.run_batch()
        c.run_batch()

        # none lost, none doubled, whichever instance answers
        for d in (a, b, c):
            self.check_shapes(d)
            wm = self.query(d, {"granularity": "all"})[1]["watermark"]
            self.assertEqual(sorted(w["shard"] for w in wm["shards"]), ["a", "b", "c"])
        for d, parts in ((a, [0, 1]), (b, [2]), (c, [3])):
            self.check_archive(d, parts)


if __name__ == "__main__":
    unittest.main()
