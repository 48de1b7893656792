"""wrk: running it against a URL and reading its figures (requests/s,
latency percentiles, errors); or, for the soak, in the background on a mix
of questions (wrk_mix.lua), with every answer counted by status."""
import os
import re
import subprocess

from lib.procs import BenchError, spawn, stop

MIX_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_mix.lua")

def parse_wrk(out):
    def dur(s):
        m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
        v = float(m.group(1))
        return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]
    res = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        res["avg"], res["max"] = dur(m.group(1)), dur(m.group(3))
    for p in ("50", "90", "99"):
        m = re.search(r"\s%s%%\s+(\S+)" % p, out)
        res["p" + p] = dur(m.group(1)) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    res["sockerr"] = m.group(1) if m else ""
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    return res


def wrk(b, url, seconds):
    r = subprocess.run(["wrk", "-t2", "-c8", "-d%ds" % seconds, "--latency", "--timeout", "5s", url],
                       capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise BenchError("wrk failed: %s" % (r.stderr or r.stdout)[-300:])
    res = parse_wrk(r.stdout)
    if res["non2xx"]:
        raise BenchError("wrk: %d non-2xx answers from %s" % (res["non2xx"], url))
    if not res["requests"]:
        raise BenchError("wrk made no request: %s" % r.stdout[-300:])
    return res


def wrk_mix_start(port, paths, seconds, threads=2, conns=8, delay_ms=0):
    """Starts wrk in the background for `seconds` on 127.0.0.1:port, each
    connection asking `paths` in turn and pausing delay_ms after each answer
    (wrk_mix.lua). wrk_mix_finish() reads it."""
    args = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency", "--timeout", "5s",
            "-s", MIX_LUA, "http://127.0.0.1:%d%s" % (port, paths[0]), "--", "delay=%d" % delay_ms] + list(paths)
    return spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_mix_finish(p, timeout):
    """Waits for a wrk_mix_start() run; returns parse_wrk()'s figures plus
    codes {status: n}, bad {epoch second: n non-2xx} and bodies {status:
    the first body}. Fails when wrk fails or made no request."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p)
        raise BenchError("wrk did not finish within %d s" % timeout)
    if p.returncode != 0:
        raise BenchError("wrk failed (%s): %s" % (p.returncode, (err or out)[-300:]))
    res = parse_wrk(out)
    res.update(codes={}, bad={}, bodies={})
    for line in out.splitlines():
        f = line.split(" ", 3)
        if len(f) >= 4 and f[0] == "MIX":
            if f[1] == "body":
                res["bodies"][f[2]] = f[3]
            elif f[1] in ("code", "bad"):
                res["codes" if f[1] == "code" else "bad"][int(f[2])] = int(f[3])
    if not res["requests"] or not res["codes"]:
        raise BenchError("wrk made no request: %s" % out[-300:])
    return res
