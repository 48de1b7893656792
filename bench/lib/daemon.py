"""The systems under test on lambdad's side: the devbroker, lambdad itself
with the demo's config, the event generator, and the batch layer's
controls (a recompute, waiting for it, the cells the views hold)."""
import json
import os
import re
import select
import subprocess
import time

from lib.bench import EXAMPLE_CONFIG
from lib.procs import BenchError, Client, free_port, spawn, stop, wait_until


class Devbroker:
    def __init__(self, b, workdir, partitions):
        self.log = open(os.path.join(workdir, "devbroker.log"), "ab")
        self.p = spawn([b.bin["devbroker"], "--topic", "pageviews:%d" % partitions],
                       stdout=subprocess.PIPE, stderr=self.log)
        r, _, _ = select.select([self.p.stdout], [], [], 20)
        line = self.p.stdout.readline().decode().strip() if r else ""
        if not line:
            stop(self.p)
            raise BenchError("lambdad-devbroker printed no address (see %s)" % self.log.name)
        self.boot = line

    def stop(self):
        stop(self.p)
        self.log.close()


def example_config(workdir, boot, archive, port, batch_interval_s=None, sketches=False,
                   cluster=None, name="lambdad"):
    """Writes the demo's config (config/lambdad.example.json) pointed at
    broker boot, archive and 127.0.0.1:port into workdir; returns its path.
    cluster: {"shard", "partitions", "peers"} makes it one instance of
    several (README "Running several instances")."""
    with open(EXAMPLE_CONFIG) as f:
        text = f.read()
    subs = [(r'"brokers": *"[^"]*"', '"brokers": "%s"' % boot),
            (r'"path": *"[^"]*"', '"path": "%s"' % archive),
            (r'"listen": *"[^"]*"', '"listen": "127.0.0.1:%d"' % port)]
    if batch_interval_s is not None:
        subs.append((r'"interval_s": *\d+', '"interval_s": %d' % batch_interval_s))
    if sketches:   # views_by_page also counts distinct users and latency quantiles
        subs.append((r'(\{"name": "slowest", "type": "max", "field": "ms"\})',
                     r'\1, {"name": "users", "type": "distinct", "field": "user"}, '
                     r'{"name": "latency", "type": "quantiles", "field": "ms"}'))
    if cluster:
        subs.append((r'"group_id": *"lambdad"', '"group_id": "%s"' % name))
        subs.append((r'"partitions": *\{\}', '"partitions": {"pageviews": %s}'
                     % json.dumps(cluster["partitions"])))
        subs.append((r'"cluster": *\{', '"cluster": {"shard": "%s", "peers": %s,'
                     % (cluster["shard"], json.dumps(cluster["peers"]))))
    for pat, rep in subs:
        text, n = re.subn(pat, rep, text, count=1)
        if n != 1:
            raise BenchError("cannot set %s in %s" % (pat, EXAMPLE_CONFIG))
    path = os.path.join(workdir, name + ".json")
    with open(path, "w") as f:
        f.write(text)
    return path


class Lambdad:
    """lambdad with the demo's config (config/lambdad.example.json: 3 views,
    durable archive, commit every 50 ms) pointed at a devbroker."""

    def __init__(self, b, workdir, boot, archive=None, batch_interval_s=None, sketches=False,
                 cluster=None, name="lambdad", port=None):
        self.b, self.port = b, port or free_port()
        self.archive = archive or os.path.join(workdir, "archive.db" if name == "lambdad"
                                                        else name + ".db")
        self.config = example_config(workdir, boot, self.archive, self.port, batch_interval_s,
                                     sketches, cluster, name)
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "ab")
        self.p = spawn([b.bin["lambdad"], "-c", self.config], stdout=self.log, stderr=self.log)
        self.http = Client(self.port)
        self.t_start = time.monotonic()
        self.pid = self.p.pid

    def alive(self):
        if self.p.poll() is not None:
            raise BenchError("lambdad exited with %s; log %s:\n%s" % (
                self.p.returncode, self.log_path, self.logtail()))

    def logtail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-15:])
        except OSError:
            return ""

    def ready(self, timeout=180):
        def ok():
            self.alive()
            try:
                return self.http.get("/readyz")[0] == 200
            except OSError:
                return False
        wait_until(ok, timeout, "lambdad /readyz", 0.02)
        return time.monotonic() - self.t_start

    def status(self):
        s, body = self.http.get("/v1/status")
        if s != 200:
            raise BenchError("/v1/status answered %s: %s" % (s, body[:200]))
        return json.loads(body)

    def wait_archived(self, n, idle_timeout=30, interval=0.01):
        """Polls until the archive holds n events; returns (monotonic time, status).
        Fails when the count stops moving (events lost to the devbroker's
        retention, or a stall) or overshoots."""
        last, t_last = -1, time.monotonic()
        while True:
            st = self.status()
            now = time.monotonic()
            a = st["archive"]["events"]
            if a >= n:
                if a > n:
                    raise BenchError("archive holds %d events, %d were produced" % (a, n))
                return now, st
            if a != last:
                last, t_last = a, now
            elif now - t_last > idle_timeout:
                raise BenchError("lambdad stalled at %d of %d events archived (lost to the "
                                 "devbroker's retention?)" % (a, n))
            self.alive()
            time.sleep(interval)

    def metrics(self):
        """/metrics as {'name{labels}': value} (Prometheus text, samples only)."""
        s, body = self.http.get("/metrics")
        if s != 200:
            raise BenchError("/metrics answered %s: %s" % (s, body[:200]))
        out = {}
        for line in body.decode(errors="replace").splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def cache_counts(self):
        """The answer cache's counters by result (hit, advance, miss, ...) from /metrics."""
        out = {}
        for k, v in self.metrics().items():
            m = re.match(r'lambdad_query_cache_total\{result="([^"]+)"\}$', k)
            if m:
                out[m.group(1)] = int(v)
        return out

    def stop(self, timeout=20):
        self.http.close()
        rc = stop(self.p, timeout=timeout)
        self.log.close()
        return rc


def cache_delta(before, after):
    """'N hit, M miss, ...' between two cache_counts(); '' when the build has no such counters."""
    keys = sorted(set(before) | set(after))
    return ", ".join("%d %s" % (after.get(k, 0) - before.get(k, 0), k) for k in keys)


def gen(b, boot, count, rate=0, seed=1, start_time=None, step_ms=None, compression="lz4", extra=()):
    """lambdad-gen producing to the devbroker's topic; `extra`: more of its
    options (--late-share, --bad-share, --dump ...)."""
    args = [b.bin["gen"], "--brokers", boot, "--topic", "pageviews", "--count", str(count),
            "--seed", str(seed), "--compression", compression, "--quiet"] + list(extra)
    if rate:
        args += ["--rate", str(rate)]
    if start_time is not None:
        args += ["--start-time", str(start_time)]
    if step_ms is not None:
        args += ["--step-ms", str(step_ms)]
    return spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def gen_finish(p, timeout=120, terminate=False):
    """Waits for (or stops) a generator; returns its summary as a dict."""
    if terminate:
        p.terminate()
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        raise BenchError("lambdad-gen did not finish within %d s" % timeout)
    err = err.decode(errors="replace")
    m = re.search(r"produced (\d+) events \((\d+) malformed, (\d+) late\), delivered (\d+), failed (\d+) "
                  r"in ([\d.]+) s \(([\d.]+)/s\)", err)
    if not m or p.returncode != 0:
        raise BenchError("lambdad-gen failed (%s): %s" % (p.returncode, err.strip()[-500:]))
    return dict(produced=int(m.group(1)), malformed=int(m.group(2)), late=int(m.group(3)),
                delivered=int(m.group(4)), failed=int(m.group(5)), seconds=float(m.group(6)),
                rate=float(m.group(7)))


def batch_status(daemon):
    """(status, its 'batch' object, its 'views' object); fails without a batch layer."""
    st = daemon.status()
    if not isinstance(st.get("batch"), dict) or not isinstance(st.get("views"), dict):
        raise BenchError("/v1/status has no batch figures: %s" % json.dumps(st)[:300])
    return st, st["batch"], st["views"]


def batch_run(daemon, view=None, timeout=600):
    """POST /v1/admin/recompute[?view=] and waits for that run to finish
    (batch.runs counts up, nothing running). Returns (wall s, status)."""
    _, bt, _ = batch_status(daemon)
    runs0 = bt["runs"] + bt["failures"]
    t0 = time.monotonic()
    s, body = daemon.http.request("POST", "/v1/admin/recompute" + ("?view=" + view if view else ""))
    if s != 202:
        raise BenchError("POST /v1/admin/recompute answered %d: %s" % (s, body[:200]))

    def done():
        daemon.alive()
        st, bt, _ = batch_status(daemon)
        # one run may already have been under way: wait for the one after it
        return not bt["running"] and bt["runs"] + bt["failures"] > runs0 and st
    st = wait_until(done, timeout, "the batch run to finish", 0.01)
    if st["batch"]["last_error"]:
        raise BenchError("batch run failed: %s" % st["batch"]["last_error"])
    return time.monotonic() - t0, st


def cells_held(st):
    """Cells of all views in memory: batch + pending + live."""
    v = st.get("views")
    if isinstance(v, dict) and v:
        return sum(x.get("batch_rows", 0) + x.get("pending_rows", 0) + x.get("live_rows", 0) for x in v.values())
    return st["speed"]["live_rows"]
