#!/usr/bin/env python3
"""Compare Starling's PromQL answers with a real Prometheus on the same data.

Generates a deterministic data set (counters with resets, jittered scrapes, gauges with NaN
and Inf, classic histograms, flapping flags, ties, staleness markers, collisions), pushes it
into a throw-away Prometheus by remote write, runs a few hundred queries at several evaluation
times and steps against Prometheus and Starling, and reports every difference: labels must be
identical, values equal within 1e-9 relative, errors equal in type and text, instant vectors
compared as sets except for sort()/sort_desc() whose order counts.

Starling is reached over HTTP: a running node (--starling-url, data pushed to its
/api/v1/write), or a throw-away node this script starts (--starling-binary, what CI does); or,
with --engine, in-process through the PromQL test harness (`swift test`), which needs no server.

Only the Python standard library is used (remote write is encoded by hand: protobuf and a
literal-only snappy block).

Exit status: 0 when every answer matches, 1 when there are differences, 2 on setup failure.
"""

import argparse
import concurrent.futures
import json
import math
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

T0 = 1_700_000_000_000  # ms; a fixed start so runs are reproducible
STEP = 15_000  # nominal scrape interval, ms
DURATION = 3 * 3600 * 1000
STALE_BITS = 0x7FF0000000000002
NAN_BITS = 0x7FF8000000000001


# ---------------------------------------------------------------------------- data generation

def bits(v):
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def generate(seed):
    """Returns a list of (labels dict, [(t_ms, value_bits)]) sorted by time per series."""
    rnd = random.Random(seed)
    series = []

    def add(labels, points):
        series.append((labels, points))

    def times(jitter=0, start=0, end=DURATION, step=STEP):
        t = start
        out = []
        while t <= end:
            j = rnd.randint(-jitter, jitter) if jitter else 0
            out.append(T0 + t + j)
            t += step
        return out

    # Counters with increments, resets, late starts, early ends and jitter.
    for inst in range(6):
        for method in ("get", "post"):
            for code in ("200", "500"):
                labels = {"__name__": "http_requests_total", "job": "api", "instance": "i%d" % inst,
                          "method": method, "code": code}
                start = 3600_000 if inst == 4 else 0
                end = 2 * 3600_000 if inst == 5 else DURATION
                ts = times(jitter=2000 if inst == 2 else 0, start=start, end=end)
                v = rnd.randint(0, 1000)
                pts = []
                for k, t in enumerate(ts):
                    if inst == 3 and k in (100, 400):
                        v = rnd.randint(0, 5)  # counter reset
                    else:
                        v += rnd.randint(0, 30 if code == "200" else 3)
                    pts.append((t, bits(float(v))))
                if inst == 5:
                    pts.append((ts[-1] + STEP, STALE_BITS))
                add(labels, pts)

    for inst in range(3):
        for cpu in range(2):
            for mode in ("idle", "user", "system"):
                labels = {"__name__": "node_cpu_seconds_total", "instance": "n%d" % inst, "cpu": str(cpu), "mode": mode}
                v = rnd.uniform(0, 1e5)
                pts = []
                for t in times():
                    v += rnd.uniform(0, 15 if mode == "idle" else 3)
                    pts.append((t, bits(v)))
                add(labels, pts)

    regions = ("eu", "us", "ap")
    for inst in range(4):
        labels = {"__name__": "node_memory_free_bytes", "instance": "n%d" % inst, "region": regions[inst % 3]}
        v = rnd.uniform(1e9, 8e9)
        pts = []
        for t in times():
            v = max(0.0, v + rnd.gauss(0, 5e7))
            pts.append((t, bits(v)))
        add(labels, pts)

    for s in range(5):
        labels = {"__name__": "temperature", "sensor": "s%d" % s, "region": regions[s % 3]}
        v = rnd.uniform(-20, 40)
        pts = []
        for k, t in enumerate(times(jitter=500)):
            v += rnd.gauss(0, 0.5)
            x = v
            if s == 1 and k % 97 == 13:
                x = float("nan")
            if s == 4 and k == 300:
                x = float("inf")
            pts.append((t, bits(x)))
        add(labels, pts)

    bounds = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
    for inst in range(3):
        counts = [0] * len(bounds)
        total = 0.0
        ts = times()
        hist = {b: [] for b in bounds}
        sums, cnts = [], []
        for t in ts:
            for _ in range(rnd.randint(0, 20)):
                obs = rnd.expovariate(2.0)
                total += obs
                for i, b in enumerate(bounds):
                    if b == "+Inf" or obs <= float(b):
                        counts[i] += 1
            for i, b in enumerate(bounds):
                hist[b].append((t, bits(float(counts[i]))))
            sums.append((t, bits(total)))
            cnts.append((t, bits(float(counts[-1]))))
        for b in bounds:
            add({"__name__": "request_duration_seconds_bucket", "instance": "h%d" % inst, "le": b}, hist[b])
        add({"__name__": "request_duration_seconds_sum", "instance": "h%d" % inst}, sums)
        add({"__name__": "request_duration_seconds_count", "instance": "h%d" % inst}, cnts)

    for inst in range(4):
        labels = {"__name__": "up", "job": "api" if inst < 2 else "db", "instance": "i%d" % inst}
        state = 1
        pts = []
        for t in times():
            if rnd.random() < 0.02:
                state = 1 - state
            pts.append((t, bits(float(state))))
        add(labels, pts)

    for q in range(6):
        labels = {"__name__": "queue_length", "queue": "q%d" % q, "shard": str(q % 2)}
        pts = [(t, bits(float(rnd.randint(0, 4)))) for t in times(step=60_000)]
        add(labels, pts)

    # Edge cases.
    add({"__name__": "edge_single", "kind": "one"}, [(T0 + 3600_000, bits(42.0))])
    add({"__name__": "edge_sparse"}, [(t, bits(float(i))) for i, t in enumerate(times(step=7 * 60_000))])
    stale = [(t, bits(1.0)) for t in times(end=3600_000)] + [(T0 + 3600_000 + STEP, STALE_BITS)]
    stale += [(t, bits(2.0)) for t in times(start=5400_000)]
    add({"__name__": "edge_stale"}, stale)
    add({"__name__": "edge_const"}, [(t, bits(7.0)) for t in times()])
    add({"__name__": "edge_negative_counter"}, [(t, bits(-100.0 + i)) for i, t in enumerate(times())])
    add({"__name__": "edge_nan"}, [(t, NAN_BITS) for t in times(step=60_000)])
    add({"__name__": "coll_a", "x": "1"}, [(t, bits(1.0)) for t in times(step=60_000)])
    add({"__name__": "coll_b", "x": "1"}, [(t, bits(2.0)) for t in times(step=60_000)])
    add({"__name__": "label_src", "src": "a-b-c", "other": "x"}, [(t, bits(3.0)) for t in times(step=60_000)])
    return series


# ---------------------------------------------------------------------------- queries

INSTANT_TIMES = [T0 + x for x in (0, 30 * 60_000 + 7_000, 3600_000, 5413_250, 2 * 3600_000 + 17, DURATION, DURATION + 180_000, DURATION + 400_000)]
RANGES = [  # (start, end, step)
    (T0, T0 + DURATION, 60_000),
    (T0 + 600_000, T0 + 4_000_000, 15_000),
    (T0 + 3_000_000, T0 + 9_000_000, 37_000),
    (T0 - 600_000, T0 + DURATION + 900_000, 300_000),
]


def query_set():
    sel = [
        "http_requests_total", 'http_requests_total{code="500"}', 'http_requests_total{instance=~"i[0-3]",method!="get"}',
        'http_requests_total{instance!~"i1|i2"}', '{__name__=~"http_requests_total|up",instance="i0"}',
        "node_memory_free_bytes", "temperature", "up", "queue_length", "edge_single", "edge_sparse", "edge_stale",
        "edge_const", "edge_nan", "http_requests_total offset 5m", "http_requests_total offset -10m",
        "temperature @ 1700003600", "up @ 1700003600 offset 1m",
    ]
    counters = ["http_requests_total", "node_cpu_seconds_total", "edge_negative_counter", 'http_requests_total{instance="i3"}',
                'http_requests_total{instance="i2"}', 'http_requests_total{instance="i5"}']
    gauges = ["temperature", "node_memory_free_bytes", "queue_length", "edge_nan", "edge_stale", "edge_sparse"]
    q = list(sel)
    for c in counters:
        for f in ("rate", "increase", "irate", "resets", "delta", "idelta", "changes"):
            for r in ("1m", "5m", "17m"):
                q.append("%s(%s[%s])" % (f, c, r))
    for g in gauges:
        for f in ("avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
                  "last_over_time", "stddev_over_time", "stdvar_over_time", "present_over_time", "deriv", "changes", "delta"):
            q.append("%s(%s[10m])" % (f, g))
        q.append("quantile_over_time(0.9, %s[30m])" % g)
        q.append("quantile_over_time(0.25, %s[30m])" % g)
        q.append("predict_linear(%s[30m], 600)" % g)
        q.append("holt_winters(%s[20m], 0.3, 0.6)" % g)
        q.append("absent_over_time(%s[2m])" % g)
    q += [
        "absent(nonexistent)", 'absent(nonexistent{job="x",instance=~"y"})', "absent(up)", "absent_over_time(nonexistent[5m])",
        "absent_over_time(edge_single[5m])",
    ]
    for agg in ("sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"):
        q.append("%s(rate(http_requests_total[5m]))" % agg)
        q.append("%s by (instance) (rate(http_requests_total[5m]))" % agg)
        q.append("%s without (instance, code) (rate(http_requests_total[5m]))" % agg)
        q.append("%s by (region) (temperature)" % agg)
        q.append("%s(node_memory_free_bytes) by (region)" % agg)
    q += [
        "topk(3, rate(http_requests_total[5m]))", "bottomk(2, rate(node_cpu_seconds_total[5m]))",
        "topk by (instance) (1, rate(http_requests_total[5m]))", "bottomk(3, temperature)",
        "topk(2, queue_length)", "bottomk(2, queue_length)", "topk(scalar(count(up)), queue_length)",
        "quantile(0.5, temperature)", "quantile by (region) (0.9, temperature)", "quantile(0, queue_length)",
        "quantile(1.5, queue_length)", 'count_values("value", queue_length)', 'count_values by (shard) ("v", queue_length)',
        'count_values without (queue) ("v", queue_length)',
        "sum by (le) (rate(request_duration_seconds_bucket[5m]))",
    ]
    for phi in ("0.5", "0.9", "0.99", "0", "1", "-1", "2"):
        q.append("histogram_quantile(%s, rate(request_duration_seconds_bucket[5m]))" % phi)
    q += [
        "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[10m])))",
        "histogram_quantile(0.5, request_duration_seconds_bucket)",
        "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
    ]
    for f in ("abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "sgn", "sin", "cos", "tan", "asin", "acos",
              "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "deg", "rad", "timestamp"):
        q.append("%s(temperature)" % f)
    for f in ("minute", "hour", "day_of_week", "day_of_month", "day_of_year", "days_in_month", "month", "year"):
        q.append("%s()" % f)
        q.append("%s(edge_const * 1e8)" % f)
    q += [
        "round(temperature)", "round(temperature, 0.5)", "round(temperature, 3)", "clamp(temperature, -5, 5)",
        "clamp(temperature, 5, -5)", "clamp_min(temperature, 0)", "clamp_max(temperature, 0)",
        "sort(temperature)", "sort_desc(temperature)", "sort(queue_length)", "sort_desc(queue_length)",
        "timestamp(edge_sparse)", "timestamp(up @ 1700005000)", "vector(1)", "vector(time())", "scalar(up)",
        'scalar(up{instance="i0"})', "time()", "pi()",
        'label_replace(up, "host", "$1", "instance", "i(.*)")', 'label_replace(up, "job", "", "job", ".*")',
        'label_replace(label_src, "parts", "${1}_$2", "src", "([a-z])-(.*)")',
        'label_replace(label_src, "x", "$1x", "src", "(a)")', 'label_replace(up, "__name__", "renamed", "", "")',
        'label_join(up, "combo", "/", "job", "instance")', 'label_join(label_src, "src", ",", "nope")',
        'label_replace(up, "1bad", "x", "job", ".*")',
    ]
    ops = ("+", "-", "*", "/", "%", "^", "atan2", "==", "!=", ">", "<", ">=", "<=")
    for op in ops:
        q.append("temperature %s 3" % op)
        q.append("3 %s temperature" % op)
        q.append("rate(http_requests_total[5m]) %s on (instance, method, code) rate(http_requests_total[10m])" % op)
    for op in ("==", "!=", ">", "<", ">=", "<="):
        q.append("temperature %s bool 10" % op)
        q.append("1 %s bool 2" % op)
        q.append("up %s bool on (instance) up" % op)
    q += [
        "up and on (instance) http_requests_total", "up or queue_length", "http_requests_total unless on (instance) (up == 0)",
        "up and ignoring (job) up", "edge_stale or edge_const",
        'sum by (instance) (http_requests_total) / on (instance) group_left sum by (instance) (up)',
        'http_requests_total * on (instance) group_left (job) up',
        'up * on (instance) group_right http_requests_total',
        'sum by (instance, job) (up) + on (instance) group_left sum by (instance) (http_requests_total)',
        "http_requests_total + on (instance) up",  # many-to-one without group: error
        "up + ignoring (instance) up",  # duplicate series on the right
        "coll_a + coll_b", "-(coll_a or coll_b)", "ceil({__name__=~\"coll_a|coll_b\"})",
        "-temperature", "+temperature", "-up offset 1m",
        "1 + 2 * 3 ^ 2 ^ 0.5 - 4 % 3", "(1 > bool 2) or vector(5)",
    ]
    q += [
        "max_over_time(rate(http_requests_total[5m])[30m:1m])", "min_over_time(temperature[20m:])",
        "avg_over_time(sum(rate(node_cpu_seconds_total[5m]))[1h:5m])", "rate(http_requests_total[5m:30s])",
        "sum_over_time(up[10m:1m] offset 5m)", "max_over_time(temperature[10m:1m] @ 1700004000)",
        "deriv(node_memory_free_bytes[30m:2m])", "count_over_time(edge_stale[10m:1m])",
        "max_over_time(max_over_time(temperature[5m:1m])[15m:2m])",
        "rate(http_requests_total[5m] @ start())", "rate(http_requests_total[5m] @ end())",
        "sum(up @ end())", "predict_linear(node_memory_free_bytes[30m] @ 1700007000, 3600)",
        "temperature @ end() - temperature", "sum(temperature @ start() offset 10m)",
        # Nested subqueries, odd steps, offsets and @ inside them.
        "max_over_time(rate(http_requests_total[5m])[30m:1m] offset 10m)",
        "sum_over_time(avg_over_time(temperature[5m:30s])[20m:2m])", "rate(sum(http_requests_total)[10m:15s])",
        "last_over_time(temperature[5m:1m] @ end())", "max_over_time(temperature[10m:7s])",
        "min_over_time(up[1h:] offset -30m)", "holt_winters(temperature[30m:1m], 0.1, 0.9)",
        "absent_over_time(temperature[5m:1m])", "count_over_time(edge_sparse[10m:1m])",
        "max_over_time((temperature @ 1700003000)[10m:1m])", "avg_over_time(rate(http_requests_total[1m] @ 1700004000)[10m:1m])",
        "timestamp(temperature offset 5m)", "timestamp(temperature @ 1700003600 offset 5m)", "timestamp(vector(1))",
        # Windows holding one or two samples.
        "irate(http_requests_total[30s])", "increase(http_requests_total[15s])", "rate(http_requests_total[20s])",
        "delta(temperature[1m])", "changes(up[1h])", "resets(http_requests_total[3h])",
        "deriv(edge_const[10m])", "predict_linear(edge_const[10m], 100)",
        "quantile_over_time(0.5, edge_nan[10m])", "stddev_over_time(edge_nan[10m])",
        "sum(edge_nan)", "max(edge_nan)", "edge_nan > 0", "edge_nan == bool edge_nan", "avg(edge_nan)",
        "sum by (__name__) ({__name__=~\"http_requests_total|up\"})", "count_values(\"x\", http_requests_total)",
        "scalar(edge_single)", "vector(scalar(up))", "-edge_stale offset 59m", "count(edge_stale offset 30m)",
        "label_replace(up, \"job\", \"j\", \"job\", \".*\")",
        "http_requests_total * on (instance) group_left (code) up",
        "up * on (instance, job) group_left (method) http_requests_total",
        # Result types and errors.
        "edge_stale[10m]", "http_requests_total[5m] offset 1m", "rate(http_requests_total[5m])[30m:5m]",
        "\"hello\"", "1", "-1.5e3", "sum(up) by (nonexistent_label)", "nonexistent_function(up)", "sum(up",
        "rate(up)", "up{", "topk(up, up)", "up + on(job) group_left(job) up",
    ]
    return q


def api_cases():
    """Requests with raw parameters: parsing, defaults and errors of the API itself."""
    long_query = "sum by (instance, job) (rate(http_requests_total{code=~\"5..\",method=\"post\"}[5m])) / on (instance) group_left sum by (instance) (rate(http_requests_total[5m]))"
    return [
        ("instant", {"query": "up", "time": "abc"}),
        ("instant", {"query": "up", "time": "2023-11-14T22:13:20Z"}),
        ("instant", {"query": "up", "time": "2023-11-14T23:13:20.5+01:00"}),
        ("instant", {"query": "up", "time": "1700003600.123456"}),
        ("instant", {"query": "up", "time": "1700003600", "timeout": "abc"}),
        ("instant", {"query": "up", "time": "1700003600", "timeout": "30s"}),
        ("instant", {"query": "", "time": "1700003600"}),
        ("instant", {"time": "1700003600"}),
        ("instant", {"query": "up +", "time": "1700003600"}),
        ("range", {"query": "up", "start": "1700000000", "end": "1699999000", "step": "15"}),
        ("range", {"query": "up", "start": "1700000000", "end": "1700003600"}),
        ("range", {"query": "up", "start": "1700000000", "end": "1700003600", "step": "0"}),
        ("range", {"query": "up", "start": "1700000000", "end": "1700003600", "step": "-5"}),
        ("range", {"query": "up", "start": "1700000000", "end": "1700003600", "step": "1m"}),
        ("range", {"query": "up", "start": "1700000000", "end": "1700003600", "step": "15.5"}),
        ("range", {"query": "up", "start": "abc", "end": "1700003600", "step": "15"}),
        ("range", {"query": "up", "start": "1700000000", "end": "1700011001", "step": "1"}),
        ("range", {"query": "up", "start": "1700000000", "end": "1700011000", "step": "1"}),
        ("range", {"query": "up[5m]", "start": "1700000000", "end": "1700003600", "step": "60"}),
        ("range", {"query": "up", "start": "2023-11-14T22:13:20Z", "end": "2023-11-14T23:13:20Z", "step": "5m"}),
        ("range", {"query": "up +", "start": "1700000000", "end": "1700003600", "step": "60"}),
        ("format", {"query": "sum(rate(x[5m])) by (job)"}),
        ("format", {"query": long_query}),
        ("format", {"query": "foo{a=~'b'} offset 5m @ 100"}),
        ("format", {"query": "sum(x"}),
        ("format", {}),
    ]


# ---------------------------------------------------------------------------- remote write

def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(num, b):
    return uvarint(num << 3 | 2) + uvarint(len(b)) + b


def encode_write_request(batch):
    out = bytearray()
    for labels, points in batch:
        ts = bytearray()
        for name in sorted(labels):
            ts += field_bytes(1, field_bytes(1, name.encode()) + field_bytes(2, labels[name].encode()))
        for t, vb in points:
            sample = uvarint(1 << 3 | 1) + struct.pack("<Q", vb) + uvarint(2 << 3 | 0) + uvarint(t & 0xFFFFFFFFFFFFFFFF)
            ts += field_bytes(2, sample)
        out += field_bytes(1, bytes(ts))
    return bytes(out)


def snappy_literal(data):
    """A valid snappy block holding `data` as literals only (no compression needed)."""
    out = bytearray(uvarint(len(data)))
    i = 0
    while i < len(data):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
        i += len(chunk)
    return bytes(out)


def remote_write(url, series, headers=None):
    """Pushes in time order, all series together per window, so no sample is older than what a
    TSDB head already holds by more than it accepts."""
    window = 10 * 60_000
    lo = min(p[0] for _, pts in series for p in pts)
    hi = max(p[0] for _, pts in series for p in pts)
    cursors = [0] * len(series)
    start = lo
    while start <= hi:
        end = start + window
        batch = []
        for i, (labels, pts) in enumerate(series):
            j = cursors[i]
            k = j
            while k < len(pts) and pts[k][0] < end:
                k += 1
            if k > j:
                batch.append((labels, pts[j:k]))
            cursors[i] = k
        if batch:
            body = snappy_literal(encode_write_request(batch))
            req = urllib.request.Request(url, data=body, method="POST")
            req.add_header("Content-Encoding", "snappy")
            req.add_header("Content-Type", "application/x-protobuf")
            req.add_header("X-Prometheus-Remote-Write-Version", "0.1.0")
            for k2, v2 in (headers or {}).items():
                req.add_header(k2, v2)
            with urllib.request.urlopen(req, timeout=60) as resp:
                if resp.status // 100 != 2:
                    raise RuntimeError("remote write to %s: HTTP %d" % (url, resp.status))
        start = end


# ---------------------------------------------------------------------------- querying

def fmt_seconds(ms):
    return "%d.%03d" % (ms // 1000, ms % 1000) if ms >= 0 else "-" + fmt_seconds(-ms)


def http_query(base, q, headers=None):
    if "raw" in q:
        path = {"instant": "/api/v1/query", "range": "/api/v1/query_range", "format": "/api/v1/format_query"}[q["kind"]]
        params = q["raw"]
    elif q["kind"] == "instant":
        params = {"query": q["query"], "time": fmt_seconds(q["time"])}
        path = "/api/v1/query"
    else:
        params = {"query": q["query"], "start": fmt_seconds(q["start"]), "end": fmt_seconds(q["end"]),
                  "step": fmt_seconds(q["step"])}
        path = "/api/v1/query_range"
    req = urllib.request.Request(base + path + "?" + urllib.parse.urlencode(params))
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


# ---------------------------------------------------------------------------- comparison

def values_equal(a, b):
    if a == b:
        return True
    fa, fb = float(a), float(b)
    if math.isnan(fa) and math.isnan(fb):
        return True
    if math.isinf(fa) or math.isinf(fb) or math.isnan(fa) or math.isnan(fb):
        return False
    return abs(fa - fb) <= 1e-9 * max(abs(fa), abs(fb))


def key(metric):
    return tuple(sorted(metric.items()))


def compare(q, p, s):
    """Returns a list of difference descriptions (empty when equal)."""
    diffs = []
    if p.get("status") != s.get("status"):
        return ["status: prometheus %s (%s) vs starling %s (%s)" % (p.get("status"), p.get("error"), s.get("status"), s.get("error"))]
    if p["status"] == "error":
        if p.get("errorType") != s.get("errorType") or p.get("error") != s.get("error"):
            diffs.append("error: prometheus %s %r vs starling %s %r" % (p.get("errorType"), p.get("error"), s.get("errorType"), s.get("error")))
        return diffs
    pd, sd = p["data"], s["data"]
    if isinstance(pd, dict) and pd["resultType"] != sd["resultType"]:
        return ["resultType: %s vs %s" % (pd["resultType"], sd["resultType"])]
    if sorted(p.get("warnings", [])) != sorted(s.get("warnings", [])):
        diffs.append("warnings: %s vs %s" % (p.get("warnings"), s.get("warnings")))
    if not isinstance(pd, dict):  # format_query returns a string
        if pd != sd:
            diffs.append("data: %r vs %r" % (pd, sd))
        return diffs
    rt = pd["resultType"]
    if rt in ("scalar", "string"):
        if pd["result"][0] != sd["result"][0] or not values_equal(pd["result"][1], sd["result"][1]):
            diffs.append("%s: %s vs %s" % (rt, pd["result"], sd["result"]))
        return diffs
    field = "value" if rt == "vector" else "values"
    pm = {key(x["metric"]): x for x in pd["result"]}
    sm = {key(x["metric"]): x for x in sd["result"]}
    for k in sorted(set(pm) - set(sm)):
        diffs.append("only in prometheus: %s %s" % (dict(k), str(pm[k][field])[:200]))
    for k in sorted(set(sm) - set(pm)):
        diffs.append("only in starling: %s %s" % (dict(k), str(sm[k][field])[:200]))
    for k in sorted(set(pm) & set(sm)):
        a, b = pm[k][field], sm[k][field]
        if rt == "vector":
            a, b = [a], [b]
        if len(a) != len(b):
            diffs.append("%s: %d points vs %d" % (dict(k), len(a), len(b)))
            continue
        for x, y in zip(a, b):
            if x[0] != y[0] or not values_equal(x[1], y[1]):
                diffs.append("%s at %s: prometheus %s vs starling %s (at %s)" % (dict(k), x[0], x[1], y[1], y[0]))
                break
    if rt == "vector" and q["query"].startswith(("sort(", "sort_desc(")) and not diffs:
        po = [key(x["metric"]) for x in pd["result"]]
        so = [key(x["metric"]) for x in sd["result"]]
        # Go's order among equal values is unspecified past 12 elements; compare values in order.
        pv = [pm[k]["value"][1] for k in po]
        sv = [sm[k]["value"][1] for k in so]
        if len(po) <= 12 and po != so or not all(values_equal(x, y) for x, y in zip(pv, sv)):
            diffs.append("order: prometheus %s vs starling %s" % (po, so))
    return diffs


# ---------------------------------------------------------------------------- processes

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, name, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (name, proc.returncode))
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("%s not ready at %s" % (name, url))


def start_prometheus(binary, workdir):
    port = free_port()
    cfg = os.path.join(workdir, "prometheus.yml")
    with open(cfg, "w") as f:
        # Out-of-order ingestion lets a script's later `load` add samples older than what the
        # head already holds (Prometheus otherwise rejects them as "out of bounds").
        f.write("global:\n  scrape_interval: 1h\nscrape_configs: []\n"
                "storage:\n  tsdb:\n    out_of_order_time_window: 3650d\n")
    log = open(os.path.join(workdir, "prometheus.log"), "w")
    proc = subprocess.Popen(
        [binary, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(workdir, "prom-data"),
         "--web.listen-address=127.0.0.1:%d" % port, "--web.enable-remote-write-receiver",
         "--storage.tsdb.retention.time=3650d"],
        stdout=log, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % port
    wait_ready(base + "/-/ready", proc, "prometheus")
    return proc, base


def start_starling(binary, workdir, token):
    """A throw-away single node. The data set lies in 2023: retention and the sample-age limit
    are widened so that neither rejects it."""
    port = free_port()
    log = open(os.path.join(workdir, "starling.log"), "w")
    env = dict(os.environ, STARLING_ADMIN_TOKEN=token)
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", os.path.join(workdir, "starling-data"), "--http", "127.0.0.1:%d" % port,
         "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0", "--node-name", "compare", "--retention", "100y",
         "--set", "ingest.max_sample_age=100y"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    base = "http://127.0.0.1:%d" % port
    try:
        wait_ready(base + "/readyz", proc, "starling", timeout=120)
    except RuntimeError:
        log.flush()
        with open(os.path.join(workdir, "starling.log")) as f:
            sys.stderr.write(f.read()[-4000:])
        raise
    return proc, base


# ---------------------------------------------------------------------------- script checking

def almost_equal(a, b):
    """promqltest's comparison: 1e-6 relative."""
    fa, fb = float(a), float(b)
    if math.isnan(fa) and math.isnan(fb):
        return True
    if fa == fb:
        return True
    diff = abs(fa - fb)
    min_normal = 2.2250738585072014e-308
    if fa == 0 or fb == 0 or diff < min_normal:
        return diff < 1e-6 * min_normal
    return diff / (abs(fa) + abs(fb)) < 1e-6


def check_eval(prom, ev):
    """Checks one exported eval against Prometheus; returns a difference or None."""
    if ev["kind"] == "instant":
        q = {"query": ev["expr"], "kind": "instant", "time": ev["time"]}
    else:
        q = {"query": ev["expr"], "kind": "range", "start": ev["start"], "end": ev["end"], "step": ev["step"]}
    r = http_query(prom, q)
    if ev["fail"]:
        if r.get("status") != "error":
            return "expected an error, Prometheus answered %s" % str(r.get("data"))[:200]
        if ev.get("failMessage") and ev["failMessage"] not in r.get("error", ""):
            return "expected error containing %r, Prometheus said %r" % (ev["failMessage"], r.get("error"))
        return None
    if r.get("status") != "success":
        return "Prometheus failed: %s" % r.get("error")
    data = r["data"]
    if "scalar" in ev:
        if data["resultType"] != "scalar" or not almost_equal(data["result"][1], ev["scalar"]):
            return "expected scalar %s, Prometheus: %s" % (ev["scalar"], data["result"])
        return None
    exp = {key(e["labels"]): e["values"] for e in ev["expected"]}
    got = data["result"]
    if ev["kind"] == "instant":
        if data["resultType"] != "vector":
            return "expected a vector, Prometheus: %s" % data["resultType"]
        seen = set()
        for pos, s in enumerate(got):
            k = key(s["metric"])
            if k not in exp:
                return "unexpected %s in Prometheus's answer" % dict(k)
            if not almost_equal(exp[k][0], s["value"][1]):
                return "%s: expected %s, Prometheus %s" % (dict(k), exp[k][0], s["value"][1])
            if ev.get("ordered") and [key(e["labels"]) for e in ev["expected"]].index(k) != pos:
                return "%s at position %d in Prometheus's answer" % (dict(k), pos + 1)
            seen.add(k)
        missing = set(exp) - seen
        if missing:
            return "expected %s, missing in Prometheus's answer" % [dict(m) for m in missing]
        return None
    for s in got:
        k = key(s["metric"])
        if k not in exp:
            return "unexpected series %s in Prometheus's answer" % dict(k)
        by_step = {}
        for t, v in s["values"]:
            by_step[int(round((float(t) * 1000 - ev["start"]) / ev["step"]))] = v
        for i, v in enumerate(exp[k]):
            if v is None and i in by_step:
                return "%s step %d: expected none, Prometheus %s" % (dict(k), i, by_step[i])
            if v is not None and (i not in by_step or not almost_equal(v, by_step[i])):
                return "%s step %d: expected %s, Prometheus %s" % (dict(k), i, v, by_step.get(i))
        if any(i >= len(exp[k]) for i in by_step):
            return "%s: Prometheus has points past the expected ones" % dict(k)
        del exp[k]
    if exp:
        return "expected series %s missing in Prometheus's answer" % [dict(m) for m in exp]
    return None


def check_scripts(args, workdir):
    """Replays the conformance scripts on Prometheus: every expectation must hold there too."""
    exported = args.exported or os.path.join(workdir, "scripts.json")
    if not args.exported:
        env = dict(os.environ, PROMQL_SCRIPT_EXPORT=workdir)
        r = subprocess.run(["swift", "test"] + (["--skip-build"] if args.skip_build else []) + ["--filter", "ScriptTests/export"],
                           cwd=args.package_dir, env=env)
        if r.returncode != 0:
            print("script export failed", file=sys.stderr)
            return 2
    with open(exported) as f:
        scripts = json.load(f)
    failures = 0
    checked = 0
    for sc in scripts:
        if args.scripts and sc["file"] not in args.scripts:
            continue
        for n, seg in enumerate(sc["segments"]):
            segdir = os.path.join(workdir, "%s-%d" % (sc["file"], n))
            os.makedirs(segdir, exist_ok=True)
            proc, prom = start_prometheus(args.prometheus, segdir)
            try:
                for step in seg:
                    if "load" in step:
                        series = [(s["labels"], list(zip(s["t"], [int(v, 16) for v in s["v"]]))) for s in step["load"]]
                        series = [x for x in series if x[1]]
                        if series:
                            try:
                                remote_write(prom + "/api/v1/write", series)
                            except urllib.error.HTTPError as e:
                                failures += 1
                                print("%s: a load of segment %d was rejected by Prometheus: %s %s" % (
                                    sc["file"], n, e.code, e.read()[:300]))
                        continue
                    ev = step["eval"]
                    checked += 1
                    d = check_eval(prom, ev)
                    if d:
                        failures += 1
                        print("%s:%d: %s\n    %s" % (sc["file"], ev["line"], ev["expr"], d))
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
                shutil.rmtree(segdir, ignore_errors=True)
    print("\n%d of %d script evaluations disagree with Prometheus." % (failures, checked))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--prometheus-url", help="use an already running Prometheus holding this data set")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--starling-url", help="a running Starling node (data is pushed to its /api/v1/write)")
    mode.add_argument("--starling-binary", help="start this `starling` executable as a throw-away node and compare over HTTP")
    mode.add_argument("--engine", action="store_true", help="evaluate in-process through `swift test` (no server)")
    mode.add_argument("--check-scripts", action="store_true",
                      help="replay the conformance scripts' expectations on Prometheus instead")
    ap.add_argument("--scripts", nargs="*", help="with --check-scripts: only these files")
    ap.add_argument("--exported", help="with --check-scripts: a scripts.json already exported (no `swift test`)")
    ap.add_argument("--starling-token", default=os.environ.get("STARLING_ADMIN_TOKEN"), help="bearer token for Starling")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", help="keep artifacts here (default: a temporary directory)")
    ap.add_argument("--package-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--parallel", type=int, default=4, help="queries in flight at once")
    ap.add_argument("--skip-build", action="store_true", help="pass --skip-build to `swift test` (tests already built)")
    ap.add_argument("--max-report", type=int, default=200, help="differences printed at most")
    args = ap.parse_args()

    workdir = args.workdir or tempfile.mkdtemp(prefix="promql-compare-")
    os.makedirs(workdir, exist_ok=True)
    if args.check_scripts:
        try:
            return check_scripts(args, workdir)
        finally:
            if not args.workdir:
                shutil.rmtree(workdir, ignore_errors=True)
    series = generate(args.seed)
    queries = []
    for text in query_set():
        for t in INSTANT_TIMES:
            queries.append({"id": len(queries), "query": text, "kind": "instant", "time": t})
        for (s, e, st) in RANGES:
            queries.append({"id": len(queries), "query": text, "kind": "range", "start": s, "end": e, "step": st})
    for kind, raw in api_cases():
        queries.append({"id": len(queries), "query": raw.get("query", ""), "kind": kind, "raw": raw})
    with open(os.path.join(workdir, "data.json"), "w") as f:
        json.dump({"series": [{"labels": l, "t": [p[0] for p in pts], "v": ["%x" % p[1] for p in pts]} for l, pts in series]}, f)
    with open(os.path.join(workdir, "queries.json"), "w") as f:
        json.dump(queries, f)
    print("data: %d series, %d samples; %d queries (%d distinct expressions); workdir %s" % (
        len(series), sum(len(p) for _, p in series), len(queries), len(query_set()), workdir), flush=True)

    proc = None
    node = None
    try:
        if args.starling_binary:
            args.starling_token = args.starling_token or "promql-compare-token-0123456789"
            node, args.starling_url = start_starling(args.starling_binary, workdir, args.starling_token)
        if args.prometheus_url:
            prom = args.prometheus_url
        else:
            proc, prom = start_prometheus(args.prometheus, workdir)
            remote_write(prom + "/api/v1/write", series)
        auth = {"Authorization": "Bearer " + args.starling_token} if args.starling_token else {}
        if args.engine:
            env = dict(os.environ, PROMQL_COMPARE_DIR=workdir)
            r = subprocess.run(["swift", "test"] + (["--skip-build"] if args.skip_build else []) + ["--filter", "CompareHarness"],
                               cwd=args.package_dir, env=env)
            if r.returncode != 0:
                print("engine harness failed", file=sys.stderr)
                return 2
            starling = {}
            with open(os.path.join(workdir, "starling-results.jsonl")) as f:
                for line in f:
                    o = json.loads(line)
                    starling[o["id"]] = o["response"]
        else:
            remote_write(args.starling_url + "/api/v1/write", series, auth)
            starling = None

        total = 0
        failing = 0
        report = []
        by_expr = {}
        def answers(q):
            p = http_query(prom, q)
            s = starling[q["id"]] if starling is not None else http_query(args.starling_url, q, auth)
            return p, s

        # Several queries in flight: both servers answer concurrently, which also exercises
        # Starling's query concurrency. Results are compared in query order.
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
            results = list(pool.map(answers, queries))
        for q, (p, s) in zip(queries, results):
            d = compare(q, p, s)
            total += 1
            if d:
                failing += 1
                by_expr.setdefault(q["query"], 0)
                by_expr[q["query"]] += 1
                if "raw" in q:
                    when = "%s %s" % (q["kind"], q["raw"])
                elif q["kind"] == "instant":
                    when = "at %s" % fmt_seconds(q["time"])
                else:
                    when = "range %s..%s step %s" % (fmt_seconds(q["start"]), fmt_seconds(q["end"]), fmt_seconds(q["step"]))
                report.append("%s [%s]\n    %s" % (q["query"], when, "\n    ".join(d[:5])))
        for r in report[:args.max_report]:
            print(r)
        print("\n%d of %d evaluations differ (%d expressions)." % (failing, total, len(by_expr)))
        return 1 if failing else 0
    finally:
        for p in (proc, node):
            if p is None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
