#!/usr/bin/env python3
"""PromQL latency benchmark: Starling, Prometheus and VictoriaMetrics on the same data, one run.

Generates the *node-core* data set (node-exporter-like hosts: CPU per core and mode, memory, load,
network, disk, filesystem and an HTTP latency histogram, scraped every 15 s), pushes it by remote
write into each system, then runs the representative query set -- `rate` of counters summed by
host, `avg by (region)` of a gauge, `max_over_time`, `topk`, `histogram_quantile`, a single
series, CPU utilisation, a ratio of gauges -- as instant queries and as 1 h / 6 h range queries,
`--runs` times each, and prints p50/p99 latency per system.

Runs of one query are interleaved across the systems (run i asks each system in turn, starting
with a different one each run), so a slow phase of the machine lands on all of them alike rather
than on whichever system's block of runs it fell in. Queries are sequential: one request at a
time, each over a new connection. Percentiles are nearest-rank: the p99 of N runs is the
ceil(0.99 N)-th fastest: the slowest run for N < 100, the second slowest for N = 100 and the
sixth slowest for N = 500.
Python's cyclic garbage collector is off while a query's runs are timed (and run between
queries), so its pauses do not land on whichever system was answering. Each row also gives
Starling's p99 over Prometheus's with a 95 % bootstrap interval over the paired runs (resampling
run indices): a row where the whole interval lies above 1 is one where Starling is slower at p99
beyond what the run-to-run noise explains. --json also keeps every run's latency.

Prometheus and VictoriaMetrics are started here (Debian packages `prometheus`, `victoria-metrics`)
on loopback with throw-away data directories; Starling is a running node given by --starling-url
(omit it to measure only the other two). VictoriaMetrics' result cache is bypassed (`nocache=1`)
so every system computes every answer.

Only the Python standard library is used. Reuses the remote-write encoder of promql-compare.py.
"""

import argparse
import importlib.util
import gc
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("promql_compare", os.path.join(HERE, "promql-compare.py"))
cmp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cmp)

START_MS = 1_700_000_000_000
SCRAPE_MS = 15_000
REGIONS = ["eu-west", "us-east", "us-west", "ap-south", "sa-east"]

QUERIES = [
    ("rate_sum_by_host", 'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))'),
    ("avg_by_region", "avg by (region) (node_memory_MemAvailable_bytes)"),
    ("max_over_time", "max_over_time(node_load1[1h])"),
    ("topk", "topk(5, rate(node_network_receive_bytes_total[5m]))"),
    ("histogram_quantile", "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
    ("single_series", 'node_load1{instance="host-042:9100"}'),
    ("cpu_utilisation", '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))'),
    ("memory_ratio", "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"),
]


def generate(hosts, hours, seed):
    rnd = random.Random(seed)
    n = hours * 3600 * 1000 // SCRAPE_MS + 1
    times = [START_MS + i * SCRAPE_MS for i in range(n)]
    out = []

    def counter(labels, rate):
        v = rnd.uniform(0, 1e6)
        vals = []
        for _ in range(n):
            v += rate * rnd.uniform(0.5, 1.5) * 15
            vals.append(float(round(v)))
        out.append((labels, vals))

    def gauge(labels, base, jitter):
        v = base
        vals = []
        for _ in range(n):
            v = max(0.0, v + rnd.uniform(-jitter, jitter))
            vals.append(v)
        out.append((labels, vals))

    modes = ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"]
    buckets = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
    bounds = [float(b) for b in buckets]
    for h in range(hosts):
        base = {"job": "node", "instance": "host-%03d:9100" % h, "region": REGIONS[h % len(REGIONS)]}

        def L(name, **extra):
            d = dict(base)
            d["__name__"] = name
            d.update(extra)
            return d
        for cpu in range(8):
            for m in modes:
                counter(L("node_cpu_seconds_total", cpu=str(cpu), mode=m), 0.7 if m == "idle" else 0.05)
        gauge(L("node_memory_MemAvailable_bytes"), rnd.uniform(2e9, 3e10), 5e7)
        gauge(L("node_memory_MemTotal_bytes"), 3.2e10, 0)
        gauge(L("node_memory_Buffers_bytes"), rnd.uniform(1e8, 1e9), 1e6)
        gauge(L("node_memory_Cached_bytes"), rnd.uniform(1e9, 8e9), 1e7)
        for l in ("node_load1", "node_load5", "node_load15"):
            gauge(L(l), rnd.uniform(0, 8), 0.3)
        for d in ("eth0", "eth1", "lo"):
            counter(L("node_network_receive_bytes_total", device=d), rnd.uniform(1e3, 1e7))
            counter(L("node_network_transmit_bytes_total", device=d), rnd.uniform(1e3, 1e7))
        for d in ("sda", "sdb"):
            counter(L("node_disk_read_bytes_total", device=d), rnd.uniform(1e3, 1e6))
            counter(L("node_disk_written_bytes_total", device=d), rnd.uniform(1e3, 1e6))
            counter(L("node_disk_io_time_seconds_total", device=d), 0.1)
        for m in ("/", "/data"):
            gauge(L("node_filesystem_avail_bytes", mountpoint=m), rnd.uniform(1e10, 1e12), 1e6)
        for handler in ("/api", "/health"):
            counts = [0.0] * len(buckets)
            total = 0.0
            series = [[] for _ in buckets]
            sums, cnts = [], []
            for _ in range(n):
                for _ in range(rnd.randint(0, 19)):
                    obs = rnd.expovariate(1 / 0.08)
                    total += obs
                    for k, b in enumerate(bounds):
                        if obs <= b:
                            counts[k] += 1
                for k in range(len(buckets)):
                    series[k].append(counts[k])
                sums.append(total)
                cnts.append(counts[-1])
            for k, b in enumerate(buckets):
                out.append((L("http_request_duration_seconds_bucket", handler=handler, le=b), series[k]))
            out.append((L("http_request_duration_seconds_sum", handler=handler), sums))
            out.append((L("http_request_duration_seconds_count", handler=handler), cnts))
    return times, out


def push(url, times, data, headers=None):
    series = [(labels, [(t, cmp.bits(v)) for t, v in zip(times, vals)]) for labels, vals in data]
    cmp.remote_write(url, series, headers)


def start_victoria(binary, workdir):
    port = cmp.free_port()
    log = open(os.path.join(workdir, "victoria.log"), "w")
    proc = subprocess.Popen(
        [binary, "-storageDataPath=" + os.path.join(workdir, "vm-data"), "-httpListenAddr=127.0.0.1:%d" % port,
         "-retentionPeriod=100y", "-search.latencyOffset=0s"],
        stdout=log, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % port
    cmp.wait_ready(base + "/health", proc, "victoria-metrics")
    return proc, base


def timed_query(base, path, params, headers):
    url = base + path + "?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as r:
        body = r.read()
    dt = (time.perf_counter() - t0) * 1000
    o = json.loads(body)
    if o.get("status") != "success":
        raise RuntimeError("%s: %s" % (params["query"], o))
    return dt


def rank(n, p):
    """Index, in n sorted values, of the nearest-rank p-quantile: the smallest value with at least
    p of the values at or below it."""
    return max(0, math.ceil(round(n * p, 9)) - 1)


def percentile(xs, p):
    return sorted(xs)[rank(len(xs), p)]


def ratio_interval(a, b, p, resamples=2000, seed=1):
    """95 % bootstrap interval of percentile(a, p) / percentile(b, p). The runs are paired (run i
    of both systems came one after the other), so each resample draws the same run indices for
    both: a slow phase of the machine stays shared, as it was when measured."""
    rnd = random.Random(seed)
    n = len(a)
    k = rank(n, p)
    ratios = []
    for _ in range(resamples):
        idx = [rnd.randrange(n) for _ in range(n)]
        ratios.append(sorted(a[i] for i in idx)[k] / sorted(b[i] for i in idx)[k])
    ratios.sort()
    return ratios[int(resamples * 0.025)], ratios[int(resamples * 0.975) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--victoria", default=shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics")
    ap.add_argument("--starling-url")
    ap.add_argument("--starling-token", default=os.environ.get("STARLING_ADMIN_TOKEN"))
    ap.add_argument("--skip", nargs="*", default=[], help="systems to leave out: prometheus victoria")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--starling-loaded", action="store_true",
                    help="the Starling node already holds this data set (same --hosts/--hours/--seed): do not push it again")
    ap.add_argument("--only", nargs="*", default=[], help="run only these queries (names from the query list)")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="promql-bench-")
    procs = []
    try:
        t0 = time.time()
        times, data = generate(args.hosts, args.hours, args.seed)
        print("node-core: %d hosts, %d series, %d samples (generated in %.0fs)" % (
            args.hosts, len(data), len(data) * len(times), time.time() - t0), flush=True)
        systems = []
        if "prometheus" not in args.skip:
            p, base = cmp.start_prometheus(args.prometheus, workdir)
            procs.append(p)
            systems.append(("prometheus", base, {}, {}))
        if "victoria" not in args.skip:
            p, base = start_victoria(args.victoria, workdir)
            procs.append(p)
            systems.append(("victoriametrics", base, {"nocache": "1"}, {}))
        if args.starling_url:
            auth = {"Authorization": "Bearer " + args.starling_token} if args.starling_token else {}
            systems.append(("starling", args.starling_url, {}, auth))
        for name, base, _, headers in systems:
            if name == "starling" and args.starling_loaded:
                continue
            t0 = time.time()
            push(base + "/api/v1/write", times, data, headers)
            if name == "victoriametrics":
                urllib.request.urlopen(base + "/internal/force_flush").read()
            print("loaded %s in %.0fs" % (name, time.time() - t0), flush=True)
        end = times[-1]
        modes = [("instant", None), ("range 1h/15s", (end - 3600_000, 15)), ("range %dh/60s" % args.hours, (times[0], 60))]
        results = {}
        print("\n%-20s %-14s" % ("query", "mode") + "".join("%26s" % s[0] for s in systems))
        print("%-35s" % "" + "".join("%26s" % "p50 / p99 ms" for _ in systems))
        for qname, q in QUERIES:
            if args.only and qname not in args.only:
                continue
            for mname, rng in modes:
                row = "%-20s %-14s" % (qname, mname)
                requests = []
                for sname, base, extra, headers in systems:
                    if rng is None:
                        path, params = "/api/v1/query", {"query": q, "time": "%.3f" % (end / 1000)}
                    else:
                        path, params = "/api/v1/query_range", {"query": q, "start": "%.3f" % (rng[0] / 1000),
                                                                "end": "%.3f" % (end / 1000), "step": str(rng[1])}
                    params.update(extra)
                    timed_query(base, path, params, headers)  # warm-up
                    requests.append((sname, base, path, params, headers))
                lat = {r[0]: [] for r in requests}
                gc.collect()
                gc.disable()
                try:
                    for i in range(args.runs):
                        for k in range(len(requests)):
                            sname, base, path, params, headers = requests[(i + k) % len(requests)]
                            lat[sname].append(timed_query(base, path, params, headers))
                finally:
                    gc.enable()
                key = "%s %s" % (qname, mname)
                for sname, _, _, _, _ in requests:
                    p50, p99 = percentile(lat[sname], 0.5), percentile(lat[sname], 0.99)
                    results.setdefault(sname, {})[key] = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
                                                          "runs_ms": [round(x, 3) for x in lat[sname]]}
                    row += "%26s" % (("%.2f / %.2f" if p99 < 10 else "%.1f / %.1f") % (p50, p99))
                if "starling" in lat and "prometheus" in lat:
                    lo, hi = ratio_interval(lat["starling"], lat["prometheus"], 0.99)
                    results["starling"][key]["p99_vs_prometheus_95ci"] = [round(lo, 3), round(hi, 3)]
                    row += "   p99 ratio %.2f [%.2f, %.2f]" % (results["starling"][key]["p99_ms"] / results["prometheus"][key]["p99_ms"], lo, hi)
                print(row, flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"hosts": args.hosts, "hours": args.hours, "runs": args.runs, "results": results}, f, indent=1)
        return 0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
