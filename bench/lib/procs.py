"""Processes: starting and stopping them cleanly, free ports, what a pid
costs (CPU seconds, resident memory), waiting with deadlines, a keep-alive
HTTP client.

Process hygiene: every process is started through spawn(), dies with
bench/run (PR_SET_PDEATHSIG), and is stopped in a finally block or at exit
(stop_all, registered with atexit). SIGTERM unwinds through every finally
block like Ctrl-C.
"""
import atexit
import ctypes
import http.client
import os
import resource
import signal
import socket
import subprocess
import time

_procs = []
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _die_with_parent():
    # PR_SET_PDEATHSIG (1): the child gets SIGKILL if this script dies, even by SIGKILL.
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def spawn(args, **kw):
    p = subprocess.Popen(args, preexec_fn=_die_with_parent, **kw)
    _procs.append(p)
    return p


def stop(p, timeout=20, sig=signal.SIGTERM):
    """Stops p (SIGTERM, then SIGKILL after timeout); returns its exit code."""
    if p is None:
        return None
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for f in (p.stdin, p.stdout, p.stderr):
        if f:
            try:
                f.close()
            except OSError:
                pass
    return p.returncode


def stop_all():
    for p in reversed(_procs):
        if p.poll() is None:
            try:
                p.kill()
                p.wait(10)
            except Exception:
                pass


atexit.register(stop_all)


def _on_sigterm(sig, frame):
    raise KeyboardInterrupt("SIGTERM")   # unwinds through every finally block


signal.signal(signal.SIGTERM, _on_sigterm)


class BenchError(Exception):
    pass


class NotAvailable(Exception):
    """A section that cannot run here; its message is printed instead of figures."""


def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """User + system CPU seconds of a process (all its threads), 1/CLK_TCK resolution."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def mem_kb(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def cpu_busy(interval=1.0):
    """Share of the machine's CPU time busy over `interval` seconds (/proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]          # total, idle + iowait
    t0, i0 = snap()
    time.sleep(interval)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(limit_s, threshold=0.25):
    """Waits up to limit_s for other work on the machine to stop (busy share
    below threshold over one second); returns the last busy share seen.
    limit_s 0: one short look only."""
    deadline = time.monotonic() + limit_s
    busy = cpu_busy(1.0 if limit_s else 0.2)
    while busy > threshold and time.monotonic() < deadline:
        time.sleep(4)
        busy = cpu_busy()
    return busy


def wait_until(fn, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        r = fn()
        if r:
            return r
        if time.monotonic() > deadline:
            raise BenchError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


class Client:
    """Keep-alive HTTP client to 127.0.0.1:port (reconnects after errors)."""

    def __init__(self, port, timeout=30):
        self.port, self.timeout, self.conn = port, timeout, None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def clear_peak_rss(pid):
    """Resets the VmHWM (peak RSS) of a process to its current RSS (Linux
    /proc/PID/clear_refs, value 5), so VmHWM read later is the peak since
    now. Returns False where that is not allowed (not our process, old kernel)."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_timed(args, **kw):
    """Runs a command to completion; returns (wall s, CPU s of the children, result)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    res = subprocess.run(args, **kw)
    t1 = time.monotonic()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return t1 - t0, cpu, res


def cmd_out(args, default="n/a"):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=20)
        out = (r.stdout or r.stderr).strip()
        return out.splitlines()[0].strip() if out else default
    except (OSError, subprocess.TimeoutExpired):
        return default
