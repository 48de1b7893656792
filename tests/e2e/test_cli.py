"""The command line: --check-config, --version, usage errors, and clean
failures at start (bad archive path, port in use) with one clear message."""
import json
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import LAMBDAD, Workdir  # noqa: E402

SRC = os.path.join(os.path.dirname(__file__), "..", "..")


def run(*args, timeout=30):
    return subprocess.run([LAMBDAD, *args], capture_output=True, text=True, timeout=timeout)


class CliTest(unittest.TestCase):
    def setUp(self):
        self.wd = Workdir("cli")

    def tearDown(self):
        self.wd.cleanup()

    def write(self, name, obj):
        path = self.wd.file(name)
        with open(path, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))
        return path

    def test_version_and_help(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^lambdad \d+\.\d+\.\d+\n$")
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--check-config", r.stdout)

    def test_usage_errors(self):
        r = run()
        self.assertEqual(r.returncode, 2)
        self.assertIn("lambdad: -c FILE is required", r.stderr)
        r = run("--bogus")
        self.assertEqual(r.returncode, 2)

    def test_check_config_examples_pass(self):
        for rel in ("config/lambdad.example.json", "deploy/lambdad.json"):
            # with the archive where this test may create it
            with open(os.path.join(SRC, rel)) as f:
                text = f.read().replace('"/var/lib/lambdad/', '"%s/' % self.wd.path)
            path = self.write(os.path.basename(rel), text)
            r = run("-c", path, "--check-config")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith(path + ": OK ("), r.stdout)
            self.assertEqual([n for n in os.listdir(self.wd.path) if n.startswith("archive")], [])

    def test_check_config_reports_every_problem(self):
        path = self.write("bad.json", {
            "kafka": {"brokerz": "x", "start": "middle"},
            "archive": {"commit_interval_ms": 0},
            "streams": [{"name": "s", "topic": "t", "time_field": "ts"},
                        {"name": "s", "topic": "u", "time_field": "ts"}],
            "views": [{"name": "v", "stream": "nope", "metrics": [{"name": "m", "type": "sum"}]},
                      {"name": "w", "stream": "s", "granularity": "week",
                       "metrics": [{"name": "c", "type": "count", "field": "x"}]}],
        })
        r = run("-c", path, "--check-config")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        got = sorted(r.stderr.splitlines())
        want = sorted("%s: %s" % (path, m) for m in [
            "kafka.brokerz: unknown key",
            "kafka.start: must be one of earliest, latest",
            "archive.commit_interval_ms: must be an integer between 1 and 60000",
            "streams[1].name: duplicate stream name 's' (also streams[0])",
            "views[0].stream: unknown stream 'nope'",
            "views[0].metrics[0].field: required for metric type 'sum'",
            "views[1].granularity: must be one of second, minute, hour, day",
            "views[1].metrics[0].field: not used with metric type 'count'",
        ])
        self.assertEqual(got, want)

    def test_unreadable_and_unparseable(self):
        missing = self.wd.file("missing.json")
        r = run("-c", missing, "--check-config")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "%s: %s: No such file or directory\n" % (missing, missing))
        path = self.write("syntax.json", '{\n  "streams": [\n  ,]\n}\n')
        r = run("-c", path, "--check-config")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith(path + ": line 3, column 3: "), r.stderr)

    def base_config(self, **http):
        return {
            "kafka": {"brokers": "127.0.0.1:1"},
            "archive": {"path": self.wd.file("a.db")},
            "http": {"listen": "127.0.0.1:0", **http},
            "streams": [{"name": "s", "topic": "t", "time_field": "ts"}],
            "views": [{"name": "v", "stream": "s", "metrics": [{"name": "n", "type": "count"}]}],
        }

    def check_fails(self, cfg, problems, *args):
        """lambdad -c <cfg> [args]: exit 1 with exactly these problems."""
        path = self.write("c.json", cfg)
        r = run("-c", path, *args)
        self.assertEqual((r.returncode, r.stdout), (1, ""), r.stderr)
        self.assertEqual(r.stderr, "".join("%s: %s\n" % (path, p) for p in problems))

    def test_kafka_options_librdkafka_refuses(self):
        cfg = self.base_config()
        cfg["kafka"]["options"] = {"fetch.wait.max.msx": 5, "fetch.wait.max.ms": "soon",
                                   "queued.min.messages": 10, "debug": "nope",
                                   "api.version.request": "maybe"}
        problems = [
            'kafka.options["fetch.wait.max.msx"]: No such configuration property: '
            '"fetch.wait.max.msx"',
            'kafka.options["fetch.wait.max.ms"]: Invalid value for configuration property '
            '"fetch.wait.max.ms"',
            'kafka.options.debug: Invalid value "nope" for configuration property "debug"',
            'kafka.options["api.version.request"]: Expected bool value for '
            '"api.version.request": true or false',
        ]
        self.check_fails(cfg, problems, "--check-config")
        # the start refuses them too, before creating anything
        self.check_fails(cfg, problems)
        self.assertEqual(sorted(os.listdir(self.wd.path)), ["c.json"])

    def test_archive_path_that_cannot_be_created(self):
        os.mkdir(self.wd.file("dir.db"))
        os.mkdir(self.wd.file("ro"), 0o555)
        open(self.wd.file("file"), "w").close()
        cases = [
            ("no/such/a.db", "cannot create {d}/no/such/a.db: directory {d}/no/such does not exist"),
            ("file/a.db", "cannot create {d}/file/a.db: {d}/file is not a directory"),
            ("dir.db", "cannot open {d}/dir.db: it is a directory"),
        ]
        for rel, why in cases:
            cfg = self.base_config()
            cfg["archive"]["path"] = self.wd.file(rel)
            problem = "archive.path: " + why.format(d=self.wd.path)
            self.check_fails(cfg, [problem], "--check-config")
            self.check_fails(cfg, [problem])   # and the start, before anything
        # a directory lambdad may not write to; root may write anywhere, so
        # as root the check runs as nobody
        cfg = self.base_config()
        cfg["archive"]["path"] = self.wd.file("ro/a.db")
        path = self.write("c.json", cfg)
        user = None
        if os.geteuid() == 0:
            user = 65534
            os.chmod(self.wd.path, 0o755)
            os.chmod(path, 0o644)
        r = subprocess.run([LAMBDAD, "-c", path, "--check-config"], capture_output=True,
                           text=True, timeout=30, user=user)
        self.assertEqual((r.returncode, r.stdout), (1, ""), r.stderr)
        self.assertEqual(r.stderr, "%s: archive.path: cannot create %s: directory %s is not "
                         "writable (Permission denied); the archive's -wal, -shm, -lock and "
                         "-views files go there too\n" % (path, self.wd.file("ro/a.db"),
                                                          self.wd.file("ro")))
        # nothing was created anywhere
        self.assertEqual(sorted(os.listdir(self.wd.path)), ["c.json", "dir.db", "file", "ro"])
        self.assertEqual(os.listdir(self.wd.file("ro")) + os.listdir(self.wd.file("dir.db")), [])

    def test_port_in_use_fails_clearly(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            cfg = self.base_config(listen="127.0.0.1:%d" % port)
            r = run("-c", self.write("c.json", cfg))
        self.assertEqual(r.returncode, 1)
        errors = [l for l in r.stderr.splitlines() if " ERROR " in l]
        self.assertEqual(len(errors), 1, r.stderr)
        self.assertIn("Failed to start the HTTP server: cannot listen on 127.0.0.1:%d" % port, errors[0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
