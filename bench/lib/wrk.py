"""wrk: running it against a URL and reading its figures (requests/s,
latency percentiles, errors)."""
import re
import subprocess

from lib.procs import BenchError

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
