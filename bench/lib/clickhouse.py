"""The peer, ClickHouse (Debian's clickhouse-server 18.16), run as a
process of its own on a temporary folder and free ports (PEERS.md), with
the same three views as lambdad's demo config."""
import os
import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

from lib.markers import marker_payload
from lib.procs import (BenchError, Client, NotAvailable, cpu_s, free_port, log, spawn, stop,
                       wait_until)

CH_TABLES = [
    # The Kafka engine table: reads the topic in the consumer group `group`.
    "CREATE TABLE {db}.src (ts UInt32, page String, country String, user String, bytes UInt64,"
    " ms Float64) ENGINE = Kafka('{boot}', 'pageviews', '{group}', 'JSONEachRow')",
    # The three views of config/lambdad.example.json, each a SummingMergeTree
    # fed by a materialized view (max/min/avg as aggregate-function states,
    # which SummingMergeTree merges too).
    "CREATE TABLE {db}.v_page (t DateTime, page String, country String, views UInt64, bytes UInt64,"
    " slowest AggregateFunction(max, Float64)) ENGINE = SummingMergeTree()"
    " PARTITION BY toYYYYMMDD(t) ORDER BY (t, page, country)",
    "CREATE MATERIALIZED VIEW {db}.mv_page TO {db}.v_page AS SELECT toStartOfMinute(toDateTime(ts))"
    " AS t, page, country, count() AS views, sum(bytes) AS bytes, maxState(ms) AS slowest"
    " FROM {db}.src GROUP BY t, page, country",
    "CREATE TABLE {db}.v_country (t DateTime, country String, views UInt64, bytes UInt64,"
    " avg_ms AggregateFunction(avg, Float64)) ENGINE = SummingMergeTree()"
    " PARTITION BY toYYYYMMDD(t) ORDER BY (t, country)",
    "CREATE MATERIALIZED VIEW {db}.mv_country TO {db}.v_country AS SELECT toStartOfHour(toDateTime(ts))"
    " AS t, country, count() AS views, sum(bytes) AS bytes, avgState(ms) AS avg_ms"
    " FROM {db}.src GROUP BY t, country",
    "CREATE TABLE {db}.v_latency (t DateTime, requests UInt64, min_ms AggregateFunction(min, Float64),"
    " max_ms AggregateFunction(max, Float64), avg_ms AggregateFunction(avg, Float64))"
    " ENGINE = SummingMergeTree() PARTITION BY toYYYYMMDD(t) ORDER BY t",
    "CREATE MATERIALIZED VIEW {db}.mv_latency TO {db}.v_latency AS SELECT toDateTime(ts) AS t,"
    " count() AS requests, minState(ms) AS min_ms, maxState(ms) AS max_ms, avgState(ms) AS avg_ms"
    " FROM {db}.src GROUP BY t",
]


class ClickHouse:
    """Debian's clickhouse-server with the stock config.xml rewritten to a
    temporary folder, 127.0.0.1 only, HTTP and native ports only, and the
    librdkafka setting the devbroker needs (PEERS.md)."""

    def __init__(self, b, name="clickhouse", timezone=None):
        exe = shutil.which("clickhouse-server") or shutil.which("clickhouse")
        stock = "/etc/clickhouse-server/config.xml"
        if not exe or not os.path.exists(stock):
            raise NotAvailable("ClickHouse is not installed (bench/deps.sh installs Debian's "
                               "clickhouse-server and clickhouse-client)")
        self.dir = b.dir(name)
        self.http_port, self.tcp_port = free_port(), free_port()
        tree = ET.parse(stock)
        root = tree.getroot()
        for tag in ("https_port", "tcp_port_secure", "interserver_http_port", "interserver_http_host",
                    "listen_host", "mysql_port", "kafka"):
            for e in root.findall(tag):
                root.remove(e)

        def setv(tag, val, parent=root):
            e = parent.find(tag)
            if e is None:
                e = ET.SubElement(parent, tag)
            e.text = val

        setv("http_port", str(self.http_port))
        setv("tcp_port", str(self.tcp_port))
        ET.SubElement(root, "listen_host").text = "127.0.0.1"
        if timezone:
            setv("timezone", timezone)
        for tag, sub in (("path", "data/"), ("tmp_path", "tmp/"), ("user_files_path", "user_files/"),
                         ("format_schema_path", "format_schemas/")):
            setv(tag, os.path.join(self.dir, sub))
        logger = root.find("logger")
        if logger is not None:
            setv("log", os.path.join(self.dir, "server.log"), logger)
            setv("errorlog", os.path.join(self.dir, "server.err.log"), logger)
        users = "/etc/clickhouse-server/users.xml"
        self.flush_ms = None
        if b.quick:
            # A smoke run cannot wait for 7.5 s flushes: a copy of users.xml
            # whose default profile flushes the Kafka engine every 500 ms.
            ut = ET.parse(users)
            prof = ut.getroot().find("profiles/default")
            if prof is not None:
                ET.SubElement(prof, "stream_flush_interval_ms").text = "500"
                users = os.path.join(self.dir, "users.xml")
                ut.write(users)
                self.flush_ms = 500
        setv("users_config", users)
        kafka = ET.SubElement(root, "kafka")
        # An empty fetch is held for fetch.wait.max.ms by the devbroker; the
        # same 10 ms lambdad and the null consumer use.
        ET.SubElement(kafka, "fetch_wait_max_ms").text = "10"
        # A new consumer group starts at the beginning of the topic, like
        # lambdad's kafka.start = earliest (18.16 otherwise starts at the end,
        # losing what was produced before its group join completed).
        ET.SubElement(kafka, "auto_offset_reset").text = "smallest"
        self.config = os.path.join(self.dir, "config.xml")
        tree.write(self.config)
        self.log = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.p = spawn([exe, "--config-file=" + self.config], stdout=self.log, stderr=self.log,
                       cwd=self.dir)
        self.http = Client(self.http_port)
        self.version = None

        def up():
            if self.p.poll() is not None:
                raise NotAvailable("clickhouse-server exited with %s at start: %s" % (
                    self.p.returncode, self.errtail()))
            try:
                s, body = self.http.request("POST", "/", b"SELECT version()")
                if s == 200:
                    self.version = body.decode().strip()
                    return True
            except OSError:
                pass
            return False
        try:
            wait_until(up, 60, "clickhouse-server to answer", 0.1)
        except BenchError as e:
            raise NotAvailable("clickhouse-server did not start: %s; %s" % (e, self.errtail()))

    def errtail(self):
        for name in ("server.err.log", "stdout.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    lines = [l for l in f.readlines() if not re.match(r"\s*\d+\. ", l)]
                if lines:
                    return "".join(lines[-5:]).strip()
            except OSError:
                pass
        return ""

    def q(self, sql):
        s, body = self.http.request("POST", "/", sql.encode())
        if s != 200:
            raise BenchError("ClickHouse: %s -> %s %s" % (sql[:80], s, body.decode(errors="replace")[:300]))
        return body.decode()

    def create(self, db, boot):
        self.q("CREATE DATABASE %s" % db)
        for stmt in CH_TABLES:
            self.q(stmt.format(db=db, boot=boot, group="bench_" + db))

    def total(self, db):
        return int(self.q("SELECT sum(views) FROM %s.v_page" % db).strip() or 0)

    def cpu(self):
        return cpu_s(self.p.pid)

    def stop(self, fast=False):
        """SIGTERM (it takes seconds to shut down); fast: SIGKILL, its folder is thrown away."""
        self.http.close()
        stop(self.p, timeout=30, sig=signal.SIGKILL if fast else signal.SIGTERM)
        self.log.close()


def ch_warm(b, ch, db, boot):
    """Creates the tables and waits until one event went through (the join)."""
    ch.create(db, boot)
    p = spawn([b.bin["probe"], "--brokers", boot, "--topic", "pageviews"], stdin=subprocess.PIPE,
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.stdin.write((marker_payload("/bench/warmup") + "\n").encode())
        p.stdin.close()
        p.wait(30)
    finally:
        stop(p)
    t0 = time.monotonic()
    wait_until(lambda: ch.total(db) >= 1, 90, "ClickHouse to read its first event", 0.1)
    log("  ClickHouse read its first event after %.1f s (group join)" % (time.monotonic() - t0))
    return 1


def ch_wait_total(ch, db, want, idle_timeout=40):
    last, t_last = -1, time.monotonic()
    while True:
        tot = ch.total(db)
        now = time.monotonic()
        if tot >= want:
            return now, tot
        if tot != last:
            last, t_last = tot, now
        elif now - t_last > idle_timeout:
            raise BenchError("ClickHouse stalled at %d of %d events" % (tot, want))
        if ch.p.poll() is not None:
            raise BenchError("clickhouse-server exited: %s" % ch.errtail())
        time.sleep(0.02)
