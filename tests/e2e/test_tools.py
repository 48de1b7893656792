"""End to end: lambdad-devbroker and lambdad-gen on their own, with kcat as
an independent Kafka client.

- the generator is reproducible (same seed: byte-identical --dump, with or
  without compression) and everything it dumps is consumed back, once per
  run, keyed by user id;
- the malformed share and kinds, lateness and the three time formats match
  what the options promise;
- --count 0 runs until SIGTERM and exits 0 after flushing;
- the devbroker's --port forwarder serves bootstrap, produce and consume,
  a taken port is an error (exit 1), SIGTERM exits 0, bad usage exits 2;
- SIGUSR1 takes every broker down (metadata requests fail) and SIGUSR2
  brings them back with every message kept.

Binaries come from DEVBROKER and LAMBDAD_GEN (set by tests/e2e/meson.build).
Every process started here is stopped in a finally block or at exit.
"""
import atexit
import collections
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

DEVBROKER = os.environ.get("DEVBROKER", "build/tools/lambdad-devbroker")
GEN = os.environ.get("LAMBDAD_GEN", "build/tools/lambdad-gen")
START = 1763892000  # 2025-11-23T10:00:00Z
SUMMARY = re.compile(r"^produced (\d+) events \((\d+) malformed, (\d+) late\), delivered (\d+), "
                     r"failed (\d+) in (\d+\.\d\d) s \((\d+)/s\)$", re.M)

_procs = []


def _kill_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_all)


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Devbroker:
    """A running lambdad-devbroker; stop() checks that SIGTERM exits 0."""

    def __init__(self, *args):
        self.proc = spawn([DEVBROKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            self.proc.kill()
            raise AssertionError("devbroker printed no address: %r"
                                 % self.proc.communicate(timeout=10)[1])
        self.bootstrap = line

    def stop(self):
        """Returns (exit status, stderr); kills it if SIGTERM is not enough."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            return None, err.decode(errors="replace")
        return self.proc.returncode, err.decode(errors="replace")


def run_gen(bootstrap, topic, *args, timeout=120):
    """Runs lambdad-gen to the end; returns (summary numbers, stderr)."""
    r = subprocess.run([GEN, "--brokers", bootstrap, "--topic", topic, *args],
                       capture_output=True, timeout=timeout)
    err = r.stderr.decode(errors="replace")
    if r.returncode != 0:
        raise AssertionError("lambdad-gen exited %d: %s" % (r.returncode, err))
    m = SUMMARY.search(err)
    if not m:
        raise AssertionError("no summary line in: %r" % err)
    keys = ("produced", "malformed", "late", "delivered", "failed")
    return dict(zip(keys, map(int, m.groups()[:5]))), err


def consume(bootstrap, topic):
    """Every message of topic as (key, partition, payload), read with kcat."""
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q",
                        "-f", "%k\t%p\t%s\n"], capture_output=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("kcat failed: %s" % r.stderr.decode(errors="replace"))
    out = []
    for line in r.stdout.split(b"\n")[:-1]:
        key, part, payload = line.split(b"\t", 2)
        out.append((key, int(part), payload))
    return out


def read_dump(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n"), "dump does not end with a newline"
    return data, data[:-1].split(b"\n")


def classify(payload, want_type):
    """The reject kind of a payload ("ok", "json", "notobject", "notime",
    "badtime") by the rules of DESIGN.md, with Python's own JSON parser."""
    try:
        o = json.loads(payload)
    except ValueError:
        return "json"
    if not isinstance(o, dict):
        return "notobject"
    if "ts" not in o:
        return "notime"
    ts = o["ts"]
    if want_type is str:
        try:
            datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
        except (TypeError, ValueError):
            return "badtime"
        return "ok"
    return "ok" if type(ts) is int else "badtime"


def rfc3339_ms(ms):
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


class GenTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lambdad-e2e-tools-")
        cls.broker = Devbroker("--topic", "t:3", "--topic", "fmt:1")

    @classmethod
    def tearDownClass(cls):
        status, err = cls.broker.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if status != 0:
            raise AssertionError("devbroker exited %r after SIGTERM: %s" % (status, err))

    def file(self, name):
        return os.path.join(self.tmp, name)

    def test_reproducible_and_consumed_back(self):
        args = ["--count", "5000", "--seed", "7", "--start-time", str(START),
                "--bad-share", "0.02", "--quiet"]
        s1, _ = run_gen(self.broker.bootstrap, "t", *args, "--dump", self.file("d1"))
        s2, _ = run_gen(self.broker.bootstrap, "t", *args, "--dump", self.file("d2"),
                        "--compression", "lz4", "--linger-ms", "100")
        raw1, dump = read_dump(self.file("d1"))
        raw2, _ = read_dump(self.file("d2"))
        self.assertEqual(raw1, raw2, "same seed, different payloads")
        self.assertEqual(len(dump), 5000)
        self.assertNotIn(b"", dump)
        for s in (s1, s2):
            self.assertEqual((s["produced"], s["delivered"], s["failed"], s["late"]),
                             (5000, 5000, 0, 0))
        self.assertEqual(s1["malformed"], s2["malformed"])

        # Both runs arrive, each payload exactly as often as it was dumped.
        got = consume(self.broker.bootstrap, "t")
        self.assertEqual(collections.Counter(p for _, _, p in got),
                         collections.Counter(dump * 2))
        self.assertEqual({part for _, part, _ in got}, {0, 1, 2})
        # Keyed by user id, so one user's events share a partition.
        parts_of_key = collections.defaultdict(set)
        for key, part, payload in got:
            parts_of_key[key].add(part)
            if classify(payload, int) == "ok":
                self.assertEqual(json.loads(payload)["user"].encode(), key)
        self.assertEqual(max(len(v) for v in parts_of_key.values()), 1)

        # Malformed share and kinds; event i is at START + i ms.
        kinds = collections.Counter()
        for i, p in enumerate(dump):
            k = classify(p, int)
            kinds[k] += 1
            if k == "ok":
                o = json.loads(p)
                self.assertEqual(o["ts"], START + i // 1000, p)
                self.assertEqual(set(o), {"ts", "page", "country", "user", "bytes", "ms"})
                self.assertIsInstance(o["bytes"], int)
        bad = 5000 - kinds["ok"]
        self.assertEqual(bad, s1["malformed"])
        self.assertTrue(50 <= bad <= 150, kinds)  # 2% of 5000 = 100
        for k in ("json", "notobject", "notime", "badtime"):  # cycled, so even
            self.assertTrue(bad // 4 <= kinds[k] <= bad // 4 + 1, kinds)

        # A different seed gives different events.
        run_gen(self.broker.bootstrap, "fmt", "--count", "100", "--seed", "8", "--quiet",
                "--start-time", str(START), "--bad-share", "0.02", "--dump", self.file("d3"))
        self.assertNotEqual(read_dump(self.file("d3"))[1], dump[:100])

    def check_times(self, fmt, to_json, want_type):
        n, step, late_ms = 2000, 250, 2 * 86400000
        s, _ = run_gen(self.broker.bootstrap, "fmt", "--count", str(n), "--seed", "3",
                       "--time-format", fmt, "--start-time", str(START), "--step-ms", str(step),
                       "--late-share", "0.1", "--late-days", "2", "--dump", self.file(fmt),
                       "--quiet")
        _, dump = read_dump(self.file(fmt))
        late = 0
        for i, p in enumerate(dump):
            self.assertEqual(classify(p, want_type), "ok", p)
            want = START * 1000 + i * step
            ts = json.loads(p)["ts"]
            if ts != to_json(want):
                late += 1
                # late: strictly earlier, at most --late-days
                self.assertTrue(to_json(want - late_ms) <= ts < to_json(want), (i, p))
        self.assertEqual(late, s["late"])
        self.assertTrue(120 <= late <= 280, late)  # 10% of 2000

    def test_time_formats_and_lateness(self):
        self.check_times("epoch_s", lambda ms: ms // 1000, int)
        self.check_times("epoch_ms", lambda ms: ms, int)
        # RFC 3339 with fixed-width fields sorts like the time it encodes.
        self.check_times("rfc3339", rfc3339_ms, str)

    def test_count_zero_runs_until_sigterm(self):
        started = time.monotonic()
        gen = spawn([GEN, "--brokers", self.broker.bootstrap, "--topic", "fmt", "--count", "0",
                     "--rate", "2000", "--quiet"], stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)   # let it run a while (nothing waits on an order here)
            self.assertIsNone(gen.poll(), "lambdad-gen --count 0 stopped on its own")
            gen.send_signal(signal.SIGTERM)
            elapsed = time.monotonic() - started
            _, err = gen.communicate(timeout=60)
        finally:
            if gen.poll() is None:
                gen.kill()
                gen.wait()
        err = err.decode(errors="replace")
        self.assertEqual(gen.returncode, 0, err)
        m = SUMMARY.search(err)
        self.assertIsNotNone(m, err)
        produced, delivered, failed = int(m.group(1)), int(m.group(4)), int(m.group(5))
        self.assertEqual((delivered, failed), (produced, 0))
        # Paced at 2000/s: never more than the rate allows in the time it ran
        # (on a loaded machine it may start late and produce fewer).
        self.assertLessEqual(produced, 2000 * elapsed + 500, (produced, elapsed))


class DevbrokerTest(unittest.TestCase):
    def test_fixed_port(self):
        port = free_port()
        broker = Devbroker("--port", str(port), "--brokers", "3", "--topic", "p:2")
        tmp = tempfile.mkdtemp(prefix="lambdad-e2e-tools-")
        try:
            addr = "127.0.0.1:%d" % port
            self.assertEqual(broker.bootstrap, addr)

            md = subprocess.run(["kcat", "-b", addr, "-L"], capture_output=True, timeout=60)
            self.assertEqual(md.returncode, 0, md.stderr)
            self.assertIn(b" 3 brokers:", md.stdout)
            self.assertIn(b'topic "p" with 2 partitions:', md.stdout)

            dump = os.path.join(tmp, "dump")
            s, _ = run_gen(addr, "p", "--count", "3000", "--seed", "11", "--bad-share", "0.05",
                           "--dump", dump, "--quiet")
            self.assertEqual((s["delivered"], s["failed"]), (3000, 0))
            r = subprocess.run(["kcat", "-P", "-b", addr, "-t", "p", "-p", "1"],
                               input=b"hello\nworld\n", capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = collections.Counter(p for _, _, p in consume(addr, "p"))
            self.assertEqual(got, collections.Counter(read_dump(dump)[1] + [b"hello", b"world"]))

            # The port is taken now: a clear error, exit 1.
            r = subprocess.run([DEVBROKER, "--port", str(port)], capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stdout, b"")
            self.assertIn(b"127.0.0.1:%d is already in use" % port, r.stderr)
        finally:
            status, err = broker.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(status, 0, err)
        self.assertEqual(err, "")  # quiet without -v

    def test_outage_signals(self):
        broker = Devbroker("-v", "--brokers", "2", "--topic", "o:2")
        addr = broker.bootstrap
        try:
            def metadata():
                return subprocess.run(["kcat", "-L", "-b", addr, "-m", "2"],
                                      capture_output=True, timeout=60)

            before = [b"before-%d" % i for i in range(200)]
            r = subprocess.run(["kcat", "-P", "-b", addr, "-t", "o"],
                               input=b"\n".join(before) + b"\n", capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            md = metadata()
            self.assertEqual(md.returncode, 0, md.stderr)
            self.assertIn(b" 2 brokers:", md.stdout)

            # Down: no broker answers a metadata request. The devbroker acts
            # on the signal asynchronously, so allow it a moment.
            broker.proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 15
            while True:
                md = metadata()
                if md.returncode != 0 or b" 0 brokers:" in md.stdout:
                    break
                self.assertLess(time.monotonic(), deadline, "brokers still up after SIGUSR1")
                time.sleep(0.1)
            self.assertIn(b"Failed to acquire metadata", md.stderr)
            time.sleep(0.5)
            md = metadata()   # and it stays down
            self.assertNotEqual(md.returncode, 0, md.stdout)
            self.assertIsNone(broker.proc.poll(), "the devbroker exited on SIGUSR1")

            # Up again: everything produced before the outage is still there,
            # and new messages go through.
            broker.proc.send_signal(signal.SIGUSR2)
            after = [b"after-%d" % i for i in range(100)]
            r = subprocess.run(["kcat", "-P", "-b", addr, "-t", "o"],
                               input=b"\n".join(after) + b"\n", capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            md = metadata()
            self.assertEqual(md.returncode, 0, md.stderr)
            self.assertIn(b" 2 brokers:", md.stdout)
            got = collections.Counter(p for _, _, p in consume(addr, "o"))
            self.assertEqual(got, collections.Counter(before + after))
        finally:
            status, err = broker.stop()
        self.assertEqual(status, 0, err)
        self.assertRegex(err, r"SIGUSR1: 2 broker\(s\) down \(data kept\)\n"
                              r"(.*\n)*.*SIGUSR2: 2 broker\(s\) up\n")

    def test_usage_errors(self):
        cases = [
            ([DEVBROKER, "--topic", "a b:2"], b"invalid topic name"),
            ([DEVBROKER, "--topic", "t:0"], b"invalid partition count"),
            ([DEVBROKER, "--topic", "t:1", "--topic", "t:2"], b"given twice"),
            ([DEVBROKER, "--brokers", "10"], b"invalid --brokers"),
            ([DEVBROKER, "--port", "70000"], b"invalid --port"),
            ([DEVBROKER, "extra"], b"unexpected argument"),
            ([GEN, "--topic", "t"], b"--brokers and --topic are required"),
            ([GEN, "-b", "x", "-t", "t", "--bad-share", "1.5"], b"invalid --bad-share"),
            ([GEN, "-b", "x", "-t", "t", "--bad-share", "0.6", "--late-share", "0.6"],
             b"must not exceed 1"),
            ([GEN, "-b", "x", "-t", "t", "--time-format", "kafka"], b"invalid --time-format"),
            ([GEN, "-b", "x", "-t", "t", "--count", "-1"], b"invalid --count"),
            ([GEN, "-b", "x", "-t", "t", "--compression", "gzip"], b"invalid --compression"),
            ([GEN, "-b", "x", "-t", "t", "--linger-ms", "-1"], b"invalid --linger-ms"),
        ]
        for args, msg in cases:
            r = subprocess.run(args, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(msg, r.stderr, args)
        for exe, want in ((DEVBROKER, b"5 MiB"), (DEVBROKER, b"SIGUSR1"), (GEN, b"--dump FILE"),
                          (GEN, b"--linger-ms MS"), (DEVBROKER, b"--linger-ms 100")):
            r = subprocess.run([exe, "--help"], capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0)
            self.assertIn(want, r.stdout)
            r = subprocess.run([exe, "--version"], capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0)
            self.assertRegex(r.stdout, rb"^lambdad-(devbroker|gen) \d+\.\d+\.\d+ ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
