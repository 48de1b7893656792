"""Freshness markers: events whose event time is a second of their own,
produced by bench-probe the moment bench/run asks, and polled until a query
shows them (benchmark 2, the peer's freshness, and the queries section's
freshness while heavy queries run)."""
import json
import os
import select
import subprocess
import time

from lib.daemon import gen
from lib.procs import spawn, stop, wait_until
from lib.stats import pct

MARKER_TIME = 2208988800       # 2040-01-01: marker i of a run has event time base + i, a second of its own


def marker_payload(page, ts=None):
    return json.dumps({"ts": int(time.time()) if ts is None else ts, "page": page, "country": "ZZ",
                       "user": "probe", "bytes": 1, "ms": 1}, separators=(",", ":"))


def freshness_run(b, boot, visible, rate, base, marker_ms, windows, window_s, poll_s, max_wait_s,
                  alive=lambda: None):
    """Produces background events at `rate` (None: the caller's generator
    runs) and, every marker_ms, one marker event whose event time is a
    second no other event has (base + i); `visible(lo, hi)` returns which
    of the seconds in [lo, hi) a query shows. Returns one list of latencies
    (s) per window, the produce->ack latencies, the number of markers never
    seen and the number sent."""
    g = gen(b, boot, 0, rate=rate, seed=7) if rate else None
    probe = None
    try:
        time.sleep(1.0)   # steady state before the first marker
        probe = spawn([b.bin["probe"], "--brokers", boot, "--topic", "pageviews"],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        os.set_blocking(probe.stdout.fileno(), False)
        # the probe's first produce waits for metadata: send one unmeasured marker
        os.write(probe.stdin.fileno(), (marker_payload("/bench/fresh/warmup") + "\n").encode())
        wait_until(lambda: select.select([probe.stdout], [], [], 0)[0] and b"ack" in (probe.stdout.read() or b""),
                   20, "the probe's first delivery")
        acks, buf = {}, b""
        sent, seen = {}, {}          # ts -> (window, send time, probe line number); ts -> seen time
        total = windows * window_s
        t_start = time.monotonic()
        next_send, i = t_start, 0
        while True:
            now = time.monotonic()
            if now - t_start < total and now >= next_send:
                ts = base + i
                line = (marker_payload("/bench/fresh/%d" % ts, ts) + "\n").encode()
                t = time.monotonic()
                os.write(probe.stdin.fileno(), line)
                sent[ts] = (min(windows - 1, int((t - t_start) // window_s)), t, i + 2)
                i += 1
                next_send += marker_ms / 1000.0
            out = [ts for ts in sent if ts not in seen]
            if out:
                vis = visible(min(out), max(out) + 1)
                t = time.monotonic()
                for ts in vis:
                    if ts in sent and ts not in seen:
                        seen[ts] = t
            try:
                chunk = probe.stdout.read()
            except (BlockingIOError, TypeError):
                chunk = None
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for l in lines:
                    parts = l.split()
                    if len(parts) == 3 and parts[0] == b"ack":
                        acks[int(parts[1])] = time.monotonic()
            if now - t_start >= total and (len(seen) == len(sent) or now - t_start > total + max_wait_s):
                break
            alive()
            time.sleep(poll_s)
        lat = [[] for _ in range(windows)]
        for ts, (w, t, _) in sent.items():
            if ts in seen:
                lat[w].append(seen[ts] - t)
        ack_lat = [acks[k] - t for (w, t, k) in sent.values() if k in acks]
        return lat, ack_lat, len(sent) - len(seen), len(sent)
    finally:
        if probe:
            stop(probe)
        if g:
            stop(g)


def fresh_summary(lat):
    """Per window p50/p99/max in ms."""
    return ([pct(w, 50) * 1000 for w in lat if w], [pct(w, 99) * 1000 for w in lat if w],
            [max(w) * 1000 for w in lat if w])
