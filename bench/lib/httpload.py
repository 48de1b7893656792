#!/usr/bin/env python3
"""httpload - a small HTTP client process for bench/run: asks questions in
a loop and prints what it measured as one JSON object when it stops.

    httpload.py --port P [--header 'K: V']... [--interval-ms MS] [--seconds S]
                [--status-every S] PATH...

- closed loop (--interval-ms 0, the default): one request after the other
  over one keep-alive connection, cycling through the paths: a client that
  keeps the server busy (the queries section's heavy questions);
- paced (--interval-ms MS): every MS ms one request to each path in turn,
  timed one by one (the cheap questions whose latency is measured);
- --status-every S: also reads /v1/status every S seconds and keeps
  (seconds since start, archive.events), so the caller sees ingestion go on
  or stop, second by second.

"{to}" in a path becomes 4102444800 + the request's number (a `to` far in
the future, one second later each time): every request is a question of
its own, which no answer cache can serve, whatever the server does with
Cache-Control.

It runs until SIGTERM/SIGINT or --seconds (a safety bound), then prints
{"paths": {PATH: {"lat_ms": [...], "codes": {"200": n}, "errors": n}},
"status": [[t, events], ...], "seconds": s} on stdout. Standard library
only; started by bench/run as a process of its own, so its timing is not
disturbed by bench/run's own loops.
"""
import argparse
import http.client
import json
import signal
import sys
import time

FAR = 4102444800          # 2100-01-01T00:00:00Z


class Stop(Exception):
    pass


stopping = False


def _stop(sig, frame):
    # The flag is what ends the loop for sure: an exception raised by a
    # signal handler is swallowed ("Exception ignored") when the handler
    # happens to run inside a finalizer, such as the __del__ that closes
    # the previous HTTPResponse. The exception only cuts a blocking wait short.
    global stopping
    stopping = True
    raise Stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--interval-ms", type=float, default=0)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--status-every", type=float, default=0)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    headers = dict(h.split(":", 1) for h in a.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    res = {p: {"lat_ms": [], "codes": {}, "errors": 0} for p in a.paths}
    status = []
    conn = [None]

    def request(path, hdrs):
        """(status, body, seconds); reconnects once after a dropped keep-alive connection."""
        for attempt in (0, 1):
            if conn[0] is None:
                conn[0] = http.client.HTTPConnection("127.0.0.1", a.port, timeout=a.timeout)
            t0 = time.perf_counter()
            try:
                conn[0].request("GET", path, headers=hdrs)
                r = conn[0].getresponse()
                body = r.read()
                return r.status, body, time.perf_counter() - t0
            except (OSError, http.client.HTTPException):
                conn[0].close()
                conn[0] = None
                if attempt:
                    raise

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    t_start = time.monotonic()
    deadline = t_start + a.seconds
    next_tick = next_status = t_start
    i = 0
    try:
        while not stopping and time.monotonic() < deadline:
            now = time.monotonic()
            if a.status_every and now >= next_status:
                next_status += a.status_every
                try:
                    s, body, _ = request("/v1/status", {})
                    if s == 200:
                        status.append([time.monotonic() - t_start, json.loads(body)["archive"]["events"]])
                except (OSError, http.client.HTTPException, ValueError, KeyError):
                    pass
            for p in a.paths:
                path = p.replace("{to}", str(FAR + i))
                i += 1
                r = res[p]
                try:
                    s, _, sec = request(path, headers)
                    r["lat_ms"].append(sec * 1000)
                    r["codes"][str(s)] = r["codes"].get(str(s), 0) + 1
                except (OSError, http.client.HTTPException):
                    r["errors"] += 1
            if a.interval_ms:
                next_tick += a.interval_ms / 1000.0
                pause = next_tick - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    next_tick = time.monotonic()    # fell behind: no burst to catch up
    except Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    json.dump({"paths": res, "status": status, "seconds": time.monotonic() - t_start}, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
