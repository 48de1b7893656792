"""Statistics and formatting: median, nearest-rank percentiles, the
'median (min–max)' form every figure is reported in, ratios that stay
n/a when a side is missing."""
import math
import statistics

def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, p):
    """Nearest-rank percentile."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))]


def fmt(x, unit=""):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, int) and unit == "":
        return "{:,}".format(x)
    a = abs(x)
    if unit == "ms":
        return ("%.1f" % x if a < 100 else "%.0f" % x) + " ms"
    if unit == "s":
        return ("%.3f" % x if a < 10 else "%.1f" % x) + " s"
    if unit == "x":
        return "%.2fx" % x
    if unit == "%":
        return "%.0f%%" % (x * 100)
    if unit == "MB":
        return "%.1f MB" % x
    if a >= 100:
        return "{:,.0f}".format(x)
    if a >= 10:
        return "%.1f" % x
    return "%.2f" % x


def ms(xs, unit=""):
    """'median (min-max)' of a list of values."""
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt(xs[0], unit)
    return "%s (%s–%s)" % (fmt(median(xs), unit), fmt(min(xs), unit), fmt(max(xs), unit))


def ratio(a, b):
    if a is None or b is None or not b or (isinstance(a, float) and math.isnan(a)) or \
            (isinstance(b, float) and math.isnan(b)):
        return float("nan")
    return a / b
