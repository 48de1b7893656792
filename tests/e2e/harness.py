"""End-to-end harness: runs the real lambdad against lambdad-devbroker over
TCP on loopback and queries it over HTTP. Every process started here is
registered and killed at exit, also when a test fails.

Binaries come from the environment (set by tests/e2e/meson.build):
LAMBDAD, DEVBROKER, LAMBDAD_GEN.
"""
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

LAMBDAD = os.environ.get("LAMBDAD", "build/daemon/lambdad")
DEVBROKER = os.environ.get("DEVBROKER", "build/tools/lambdad-devbroker")
GEN = os.environ.get("LAMBDAD_GEN", "build/tools/lambdad-gen")

_procs = []


def _kill_all():
    for p in _procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=10)
            except Exception:
                pass


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, lambda *a: (_kill_all(), os._exit(1)))


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout=30.0, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))


def need(tool, package):
    path = shutil.which(tool)
    if not path:
        raise AssertionError("%s is not installed (Debian package %s; scripts/deps.sh installs it)"
                             % (tool, package))
    return path


def make_cert(wd):
    """A self-signed certificate for 127.0.0.1 and its key, in wd."""
    need("openssl", "openssl")
    cert, key = wd.file("cert.pem"), wd.file("key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("openssl failed: %s" % r.stderr)
    return cert, key


class Workdir:
    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix="lambdad-e2e-%s-" % name)

    def file(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Devbroker:
    def __init__(self, topics, brokers=1):
        args = [DEVBROKER, "--brokers", str(brokers)]
        for t in topics:
            args += ["--topic", t]
        self.proc = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line:
            raise AssertionError("devbroker printed no address: %s" % self.proc.stderr.read())
        self.bootstrap = line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


def produce(bootstrap, topic, payloads, partition=None):
    """Produces each payload (bytes or str, no newline) as one message with
    kcat, and waits until all are delivered."""
    data = b"".join((p.encode() if isinstance(p, str) else p) + b"\n" for p in payloads)
    args = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-X", "linger.ms=5"]
    if partition is not None:
        args += ["-p", str(partition)]
    r = subprocess.run(args, input=data, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("kcat failed: %s" % r.stderr.decode(errors="replace"))


DEFAULT_STREAMS = [{"name": "pageviews", "topic": "pageviews", "time_field": "ts",
                    "time_format": "epoch_s"}]


class Daemon:
    """lambdad with a generated config in its own workdir."""

    def __init__(self, workdir, bootstrap, streams=None, views=None, extra=None, name="lambdad"):
        self.workdir = workdir
        self.port = free_port()
        self.cfg = {
            "kafka": {"brokers": bootstrap, "options": {"fetch.wait.max.ms": "10"},
                      "metadata_refresh_ms": 500},
            "archive": {"path": workdir.file(name + ".db"), "commit_interval_ms": 50},
            "http": {"listen": "127.0.0.1:%d" % self.port, "threads": 2},
            "streams": streams or DEFAULT_STREAMS,
            "views": views or [],
        }
        for k, v in (extra or {}).items():
            self.cfg.setdefault(k, {}).update(v)
        self.config_path = workdir.file(name + ".json")
        self.log_path = workdir.file(name + ".log")
        with open(self.config_path, "w") as f:
            json.dump(self.cfg, f, indent=2)
        self.proc = None

    def start(self, wait_ready=True, env=None):
        self.log = open(self.log_path, "ab")
        self.proc = spawn([LAMBDAD, "-c", self.config_path], stdout=self.log, stderr=self.log,
                          env=dict(os.environ, **(env or {})))
        wait_until(self._listening, 30, "lambdad to listen")
        if wait_ready:
            wait_until(lambda: self.status_of("/readyz") == 200, 30, "lambdad /readyz")
        return self

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("lambdad exited with %s:\n%s" % (self.proc.returncode, self.logtext()))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def rewrite_config(self, **sections):
        """Changes config sections on disk (for SIGHUP tests)."""
        for k, v in sections.items():
            self.cfg[k] = v
        with open(self.config_path, "w") as f:
            json.dump(self.cfg, f, indent=2)

    def logtext(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self, timeout=20):
        """SIGTERM; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            bt = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-ex", "thread apply all bt 15"],
                                capture_output=True, text=True, timeout=60).stdout if shutil.which("gdb") else ""
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("lambdad did not stop within %d s after SIGTERM; its threads:\n%s\nlog:\n%s"
                                 % (timeout, bt, self.logtext()[-3000:]))
        self.log.close()
        return rc

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=body,
                                     method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw), dict(r.headers)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw), dict(e.headers)
            except ValueError:
                return e.code, raw, dict(e.headers)

    def request_at_failpoint(self, method, path, body=None):
        """A request that may make the daemon kill itself at a failpoint
        (LAMBDAD_FAILPOINT) before it answers: the closed connection is that
        failpoint, not an error. Returns the status, or None when closed."""
        try:
            return self.request(method, path, body)[0]
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            return None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (ConnectionResetError, ConnectionRefusedError, BrokenPipeError)):
                return None
            raise

    def get_text(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=30) as r:
            return r.read().decode()

    def get(self, path):
        s, b, _ = self.request("GET", path)
        return s, b

    def status_of(self, path):
        """The status of GET path, or None while the port is closed (the
        daemon starts, or a reload reopens its listener)."""
        try:
            return self.get(path)[0]
        except urllib.error.URLError as e:
            if isinstance(e.reason, (ConnectionRefusedError, ConnectionResetError)):
                return None
            raise
        except (ConnectionResetError, http.client.RemoteDisconnected):
            return None

    def query(self, view, **params):
        path = "/v1/views/%s/query" % view
        if params:
            path += "?" + urllib.parse.urlencode(params)
        s, b = self.get(path)
        if s != 200:
            raise AssertionError("query %s -> %s %s" % (path, s, b))
        return b

    def status(self):
        s, b = self.get("/v1/status")
        assert s == 200, (s, b)
        return b

    def run_batch(self, view=None, timeout=60):
        """Asks for a batch run (of one view, or all) and waits until it is
        done; returns /v1/status then."""
        before = self.status()["batch"]["runs"]
        path = "/v1/admin/recompute" + ("?view=" + view if view else "")
        s, body, _ = self.request("POST", path, b"")
        if s != 202:
            raise AssertionError("POST %s -> %s %s" % (path, s, body))
        return wait_until(lambda: (lambda st: st if st["batch"]["runs"] > before
                                   and not st["batch"]["running"] else None)(self.status()),
                          timeout, "a batch run")

    def wait_archived(self, accepted, rejected=0, timeout=60):
        """Waits until the archive holds exactly this many events/rejects."""
        def done():
            a = self.status()["archive"]
            if a["events"] > accepted or a["rejects"] > rejected:
                raise AssertionError("archive holds more than produced: %s" % a)
            return a["events"] == accepted and a["rejects"] == rejected
        wait_until(done, timeout, "%d events and %d rejects archived" % (accepted, rejected), 0.1)


def stop_all(cls):
    """Stops the class's daemon (it must exit 0: a sanitizer report would
    not), its broker, and removes its workdir."""
    try:
        rc = cls.d.stop()
        if rc != 0:
            raise AssertionError("lambdad exited with %s:\n%s" % (rc, cls.d.logtext()))
    finally:
        cls.broker.stop()
        cls.wd.cleanup()
