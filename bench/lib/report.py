"""The report: the summary table printed at the end, the verdicts on the
performance goals, the machine's facts, and the results file (markdown)."""
import json
import os
import subprocess
import sys
import time

from lib.bench import REPO
from lib.procs import cmd_out

def machine_facts(b):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576)
    except OSError:
        pass
    opts = {}
    try:
        r = subprocess.run(["meson", "introspect", "--buildoptions", b.build_dir],
                           capture_output=True, text=True, timeout=30)
        opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    except Exception:
        pass
    git = cmd_out(["git", "-C", REPO, "describe", "--always", "--dirty", "--abbrev=12"])
    try:
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        dirty = ""
    ch = cmd_out(["dpkg-query", "-W", "-f=${Version}", "clickhouse-server"], "not installed")
    facts = [
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("mode", "quick (smoke run; figures meaningless)" if b.quick else "full"),
        ("nproc", str(os.cpu_count())),
        ("CPU", cpu),
        ("memory", mem),
        ("kernel", os.uname().release),
        ("lambdad", "%s (git %s)" % (cmd_out([b.bin["lambdad"], "--version"]), git)),
        ("build", "%s, buildtype=%s, b_sanitize=%s" % (b.build_dir, opts.get("buildtype", "?"),
                                                       opts.get("b_sanitize", "?"))),
        ("compiler", cmd_out(["cc", "--version"])),
        ("librdkafka", cmd_out(["pkg-config", "--modversion", "rdkafka"])),
        ("libmicrohttpd", cmd_out(["pkg-config", "--modversion", "libmicrohttpd"])),
        ("SQLite (sqlite3 CLI)", cmd_out(["sqlite3", "--version"]).split(" ")[0]),
        ("zstd", cmd_out(["pkg-config", "--modversion", "libzstd"])),
        ("wrk", cmd_out(["dpkg-query", "-W", "-f=${Version}", "wrk"], "not installed")),
        ("ClickHouse", ch),
        ("Python", sys.version.split()[0]),
        ("load average (1 min) at start / end", "%.2f / %.2f" % (b.load_start, os.getloadavg()[0])),
    ]
    if dirty and "dirty" in git:
        facts.append(("uncommitted", "the build included uncommitted changes to: " +
                      ", ".join(sorted({l[3:].split("/")[0] for l in dirty.splitlines() if len(l) > 3}))))
    if opts.get("buildtype") not in (None, "release"):
        facts.append(("warning", "not a release build: figures are not representative"))
    if opts.get("b_sanitize", "none") != "none":
        facts.append(("warning", "sanitizer build: figures are meaningless"))
    return facts


class Report:
    def __init__(self):
        self.rows, self.sections, self.goals, self.failures, self.notes = [], [], [], [], []
        self.busy = {}          # section title -> CPU share busy with other work at its start

    def row(self, bench, metric, value, baseline, ratio_):
        self.rows.append((bench, metric, value, baseline, ratio_))

    def goal(self, text, met, figure, issue=5):
        """A performance goal of issue #`issue`: met True/False, None when not measured.
        Goals are kept (and printed) grouped by issue, in the order they came."""
        self.goals.append((text, met, figure, issue))
        self.goals.sort(key=lambda g: g[3])

    def section(self, title, lines):
        self.sections.append((title, lines))

    def table(self):
        head = ("benchmark", "figure", "lambdad", "baseline (same run)", "ratio")
        rows = [head] + self.rows
        w = [max(len(r[i]) for r in rows) for i in range(5)]
        out = []
        for i, r in enumerate(rows):
            out.append("  ".join(r[j].ljust(w[j]) for j in range(5)).rstrip())
            if i == 0:
                out.append("  ".join("-" * w[j] for j in range(5)))
        return "\n".join(out)

    def markdown(self, facts, elapsed, cmdline, quick=False):
        L = ["# lambdad benchmark results", "",
             "Written by `%s` in %.0f s. How each figure is measured, and what the baselines are: "
             "[bench/README.md](../README.md)." % (cmdline, elapsed), "", "## Machine", "",
             "| | |", "|---|---|"]
        L += ["| %s | %s |" % (k, v.replace("|", "\\|")) for k, v in facts]
        L += ["", "## Summary", "", "Medians over the repetitions; spreads are in the sections below.", "",
              "| benchmark | figure | lambdad | baseline (same run) | ratio |", "|---|---|---|---|---|"]
        L += ["| %s |" % " | ".join(c.replace("|", "\\|") for c in r) for r in self.rows]
        for issue in sorted({g[3] for g in self.goals} | {5}):
            L += ["", "## Performance goals (issue #%d)" % issue, ""]
            if quick:
                L += ["A quick run: its sizes are far too small for these verdicts to mean anything.", ""]
            L += ["| goal | verdict | figure |", "|---|---|---|"]
            for text, met, figure, _ in (g for g in self.goals if g[3] == issue):
                L.append("| %s | %s | %s |" % (text, {True: "**met**", False: "**missed**",
                                                       None: "not measured"}[met], figure))
        if self.failures:
            L += ["", "## Failures", ""] + ["- **%s**: %s" % (t, m.replace("\n", " ")) for t, m in self.failures]
        for title, lines in self.sections:
            L += ["", "## " + title, ""] + lines
            if title in self.busy:
                L += ["", "_Other work on the machine when this section started: %.0f%% of its CPU "
                      "(bench/run waits up to 2 minutes for it to fall under 25%%)._" % (self.busy[title] * 100)]
        return "\n".join(L) + "\n"
