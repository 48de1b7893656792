"""An independent model of lambdad's aggregation semantics, written from the
contract (DESIGN.md, README) and not from the C code: given the events a
test produced, it computes what every query must answer."""
import calendar
import datetime
import json
import math
import zoneinfo

GRAN_ORDER = ["second", "minute", "hour", "day", "month", "all"]
GRAN_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def floor_time(ts, gran):
    if gran == "all":
        return None
    if gran == "month":
        d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
        return calendar.timegm((d.year, d.month, 1, 0, 0, 0))
    g = GRAN_SECONDS[gran]
    return (ts // g) * g


def parse_time(v):
    """A query's from/to: epoch seconds, epoch milliseconds (integers of
    absolute value 10^11 or more) or RFC 3339; floored to seconds."""
    if v is None:
        return None
    if isinstance(v, int) or v.lstrip("-").isdigit():
        v = int(v)
        return v // 1000 if abs(v) >= 10 ** 11 else v
    return math.floor(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp())


# ---- answer buckets: multiples, weeks, months, zones (README, "granularity",
# "tz"), with Python's zoneinfo (the system's tzdata, not lambdad's ICU) ----

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
UNIT_NAMES = {"second": (1, "s"), "minute": (1, "m"), "hour": (1, "h"), "day": (1, "d"),
              "week": (1, "w"), "month": (1, "mo"), "all": (1, "all")}
EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()
AUTO_LADDER = ["second", "5s", "10s", "15s", "30s", "minute", "5m", "10m", "15m", "30m",
               "hour", "2h", "3h", "6h", "12h", "day", "week", "month"]


def split_gran(gran):
    """(multiple, unit): 'minute' -> (1, 'm'), '15m' -> (15, 'm'), 'week' -> (1, 'w')."""
    if gran in UNIT_NAMES:
        return UNIT_NAMES[gran]
    return int(gran[:-1]), gran[-1]


def gran_name(gran):
    n, u = split_gran(gran)
    if n == 1:
        return {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week",
                "mo": "month", "all": "all"}[u]
    return gran


def local_midnight(day_number, zone):
    """The first instant of a local date (fold=0: a midnight that does not
    exist reads with the offset before the gap, i.e. the gap's end)."""
    d = datetime.date.fromordinal(day_number + EPOCH_DAY)
    return int(datetime.datetime(d.year, d.month, d.day, tzinfo=zone).timestamp())


def bucket_bounds(ts, gran, tz=None):
    """[start, end) of the answer bucket holding ts."""
    n, u = split_gran(gran)
    if u in UNIT_SECONDS:
        w = n * UNIT_SECONDS[u]
        return ts // w * w, ts // w * w + w
    zone = zoneinfo.ZoneInfo(tz or "UTC")
    local = datetime.datetime.fromtimestamp(ts, zone)
    if u == "mo":
        y, m = local.year, local.month
        start = datetime.datetime(y, m, 1, tzinfo=zone)
        end = datetime.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=zone)
        return int(start.timestamp()), int(end.timestamp())
    days, origin = (n * 7, 4) if u == "w" else (n, 0)   # weeks from Monday 1970-01-05
    dn = local.date().toordinal() - EPOCH_DAY
    k = (dn - origin) // days * days + origin
    return local_midnight(k, zone), local_midnight(k + days, zone)


def render_bucket(ts, tz):
    if not tz:
        return rfc3339(ts)
    return datetime.datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(tz)).isoformat()


def buckets_of(lo, hi, gran, tz):
    """Starts of the buckets [lo, hi) touches, from the one holding lo."""
    out, t = [], bucket_bounds(lo, gran, tz)[0]
    while t < hi:
        out.append(t)
        t = bucket_bounds(t, gran, tz)[1]
    return out


def auto_gran(lo, hi, max_points, vgran, tz):
    """The finest ladder entry the view allows with at most max_points buckets."""
    vw = GRAN_SECONDS[vgran]
    chosen = None
    for g in AUTO_LADDER:
        n, u = split_gran(g)
        if u in UNIT_SECONDS and (n * UNIT_SECONDS[u]) % vw:
            continue
        if u == "d" and not tz and (n * 86400) % vw:
            continue
        chosen = g
        if len(buckets_of(lo, hi, g, tz)) <= max_points:
            break
    return chosen


def rfc3339(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_time(obj, stream):
    """Epoch seconds (floored) of an accepted event, or None if rejected."""
    if not isinstance(obj, dict):
        return None
    v = obj.get(stream["time_field"])
    fmt = stream.get("time_format", "epoch_s")
    if isinstance(v, str) and fmt in ("epoch_s", "epoch_ms"):
        try:
            v = float(v) if "." in v else int(v)
        except ValueError:
            return None
    if fmt == "epoch_s" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return math.floor(v)
    if fmt == "epoch_ms" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return math.floor(v / 1000)
    if fmt == "rfc3339" and isinstance(v, str):
        d = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
        return math.floor(d.timestamp())
    return None


MISSING = object()


def lookup(obj, field):
    """A field of an event: a dotted name reads nested objects (README,
    "Fields: nested, derived, and filtered metrics"); MISSING when a step is
    absent or not an object."""
    for part in field.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return MISSING
        obj = obj[part]
    return obj


def dim_text(raw_obj_text, obj, field):
    """A dimension value as lambdad keeps it: strings as is, other JSON values
    as their text, missing or null as None. Tests only use ints, bools and
    strings for non-string dimensions, whose JSON text Python reproduces."""
    v = lookup(obj, field)
    if v is MISSING or v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v, separators=(",", ":"))


class Cell:
    """Sums are exact, rounded once (README: math.fsum); integers stay ints.
    Sketch metrics keep everything: the set of distinct texts, all values."""
    __slots__ = ("n", "ints", "floats", "min", "max", "texts", "values")

    def __init__(self):
        self.n, self.ints, self.floats, self.min, self.max = 0, 0, [], None, None
        self.texts, self.values = set(), []

    def add(self, v):
        self.n += 1
        if isinstance(v, int):
            self.ints += v
        else:
            self.floats.append(v)
        self.min = v if self.min is None else min(self.min, v)
        self.max = v if self.max is None else max(self.max, v)

    @property
    def sum(self):
        return math.fsum(self.floats + [self.ints]) if self.floats else self.ints


class Quantiles:
    """The true quantiles of a cell's values: the value of rank
    floor(q * (n - 1)) in ascending order (README), None when empty."""

    def __init__(self, values):
        self.values = sorted(values)

    def at(self, q):
        if not self.values:
            return None
        return self.values[math.floor(q * (len(self.values) - 1))]


def metric_value(mtype, c):
    if mtype == "count":
        return c.n
    if mtype == "distinct":
        return len(c.texts)
    if mtype == "quantiles":
        return Quantiles(c.values)
    if mtype == "sum":
        return c.sum
    if c.n == 0:
        return None
    if mtype == "min":
        return c.min
    if mtype == "max":
        return c.max
    return c.sum / c.n


def expected(payloads, stream, view, derive=None, where=None, qwhere=None, qpost=None,
             qhaving=None, **q):
    """Rows that GET /v1/views/{view}/query with parameters q must return.
    derive(obj, ts) returns the event with its derived fields added, and
    where maps a metric name to a predicate of that event: both written by
    the test in Python, independently of lambdad's expression language.
    So are the query's expressions: qwhere(dims) for where (all of the
    view's dimensions, as text), qpost[name](metrics) for each
    post-aggregation of metrics=..,name=<expression>, qhaving(metrics)
    (post-aggregations included) for having. Returns the rows; the
    answer's granularity name is expected_gran(view, **q)."""
    gran = answer_gran(view, **q)
    tz = q.get("tz")
    group_by = [d for d in q.get("group_by", "").split(",") if d]
    filters = {}
    for item in [i for i in q.get("filter", "").split(",") if i]:
        d, v = item.split(":", 1)
        filters.setdefault(d, set()).add(v)
    items = split_metrics(q.get("metrics", "")) or [m["name"] for m in view["metrics"]]
    posts = [i.split("=", 1)[0] for i in items if "=" in i]
    metrics = [i for i in items if "=" not in i]
    names = [i.split("=", 1)[0] for i in items]
    mdefs = {m["name"]: m for m in view["metrics"]}
    vgran = view.get("granularity", "minute")
    lo, hi = parse_time(q.get("from")), parse_time(q.get("to"))

    groups = {}
    for p in payloads:
        try:
            obj = json.loads(p)
        except ValueError:
            continue
        ts = event_time(obj, stream)
        if ts is None:
            continue
        if derive:
            obj = derive(obj, ts)
        bucket = floor_time(ts, vgran)
        if lo is not None and bucket < lo:
            continue
        if hi is not None and bucket >= hi:
            continue
        dims = {d: dim_text(p, obj, d) for d in view.get("dimensions", [])}
        if any(dims[d] not in vals for d, vals in filters.items()):
            continue
        if qwhere and not qwhere(dims):
            continue
        start = None
        if gran != "all":
            start, end = bucket_bounds(bucket, gran, tz)
            assert bucket + GRAN_SECONDS[vgran] <= end, "a stored bucket spans two answer buckets"
        key = (start, tuple(dims[d] for d in group_by))
        cells = groups.get(key)
        if cells is None:
            cells = groups[key] = {m: Cell() for m in mdefs}
        for name, m in mdefs.items():
            if where and name in where and where[name](obj) is not True:
                continue
            if m["type"] == "count":
                cells[name].n += 1
                continue
            if m["type"] == "distinct":
                text = dim_text(p, obj, m["field"])
                if text is not None:
                    cells[name].texts.add(text)
                continue
            v = lookup(obj, m["field"])
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if m["type"] == "quantiles":
                    cells[name].values.append(v)
                else:
                    cells[name].add(v)

    fill = q.get("fill")
    if fill:
        starts = [None] if gran == "all" else buckets_of(lo, hi, gran, tz)
        series = {dims for _, dims in groups} or ({()} if not group_by else set())
        for dims in series:
            for t in starts:
                if (t, dims) not in groups:
                    groups[(t, dims)] = None if fill == "null" else {m: Cell() for m in mdefs}

    rows = []
    for (t, dims), cells in groups.items():
        row = {}
        if gran != "all":
            row["time"] = render_bucket(t, tz)
            row["ts"] = t
        row["dims"] = dict(zip(group_by, dims))
        values = {m: None if cells is None else metric_value(mdefs[m]["type"], cells[m])
                  for m in mdefs}
        for name in posts:
            values[name] = qpost[name](values)
        if qhaving and qhaving(values) is not True:
            continue
        row["metrics"] = {m: values[m] for m in names}
        rows.append(row)

    def natural(r):
        return (r.get("ts", 0), [(0, b"") if r["dims"][d] is None else (1, r["dims"][d].encode())
                                 for d in group_by])
    rows.sort(key=natural)
    ob = q.get("order_by")
    if ob:
        desc = q.get("order", "desc") == "desc"
        present = [r for r in rows if r["metrics"][ob] is not None]
        absent = [r for r in rows if r["metrics"][ob] is None]
        present.sort(key=lambda r: r["metrics"][ob], reverse=desc)  # stable: ties keep natural order
        rows = present + absent
    if "limit" in q:
        rows = rows[:int(q["limit"])]
    return rows


def split_metrics(text):
    """metrics=a,b,name=round(x, 2): commas inside parentheses or quotes
    do not split."""
    items, depth, quote, cur = [], 0, None, ""
    for c in text:
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "()":
            depth += 1 if c == "(" else -1
        elif c == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        cur += c
    return [i for i in items + [cur] if i]


def answer_gran(view, **q):
    """The answer's granularity: the query's, the view's, or auto's choice."""
    gran = q.get("granularity", view.get("granularity", "minute"))
    if gran == "auto":
        return auto_gran(parse_time(q["from"]), parse_time(q["to"]), int(q["max_points"]),
                         view.get("granularity", "minute"), q.get("tz"))
    return gran


def expected_gran(view, **q):
    return gran_name(answer_gran(view, **q))


def assert_rows(got, want, what):
    """Exact comparison; numbers compare by value (3 == 3.0)."""
    if got != want:
        lines = ["%s: %d rows, expected %d" % (what, len(got), len(want))]
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                lines.append("first difference at row %d:\n  got:      %s\n  expected: %s" % (i, g, w))
                break
        raise AssertionError("\n".join(lines))


def quantile_name(q):
    """p + the quantile times 100, from its text: "0.999" -> "p99.9"."""
    whole, _, frac = q.partition(".")
    frac = frac.ljust(2, "0")
    rest = frac[2:].rstrip("0")
    return "p%d%s" % (int(whole) * 100 + int(frac[:2]), "." + rest if rest else "")


def assert_sketch_rows(got, want, what, view, exact_below, accuracy,
                       quantiles=("0.5", "0.9", "0.99"), distinct_error=0.04):
    """Like assert_rows, but a distinct metric is exact up to exact_below
    distinct values and within distinct_error above, and each quantile is
    within the relative accuracy of the true one (zero exactly)."""
    mtypes = {m["name"]: m["type"] for m in view["metrics"]}
    if len(got) != len(want):
        raise AssertionError("%s: %d rows, expected %d" % (what, len(got), len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        plain_g = {k: v for k, v in g.items() if k != "metrics"}
        plain_w = {k: v for k, v in w.items() if k != "metrics"}
        if plain_g != plain_w or set(g["metrics"]) != set(w["metrics"]):
            raise AssertionError("%s: row %d:\n  got:      %s\n  expected: %s" % (what, i, g, w))
        for name, wv in w["metrics"].items():
            gv = g["metrics"][name]
            if isinstance(wv, Quantiles):
                want_q = {quantile_name(q): wv.at(float(q)) for q in quantiles}
                ok = set(gv) == set(want_q) and all(
                    (gv[k] is None) == (t is None) and
                    (t is None or abs(gv[k] - t) <= accuracy * abs(t) * (1 + 1e-9))
                    for k, t in want_q.items())
            elif mtypes[name] == "distinct":
                ok = gv == wv if wv <= exact_below else abs(gv - wv) <= distinct_error * wv
            else:
                ok = gv == wv
            if not ok:
                raise AssertionError("%s: row %d metric %s: got %s, expected %s (row %s)"
                                     % (what, i, name, gv, wv, g))
