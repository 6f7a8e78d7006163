#!/usr/bin/env python3
"""Cluster benchmarks on loopback (docs/benchmarks.md, "Cluster").

Runs clusters of real `starling serve` processes with Cluster/cluster (release build) and
`starling-bench` as the load generator:

  ingest     node-exporter-like remote write spread over every node of 1-, 3- and 5-node
             clusters at RF 1 and RF 3: accepted samples/s, latency, server CPU per sample
             (summed over the nodes), and every sample read back through node 1
  rebalance  a loaded 3-node RF 3 cluster grows by a node: time until the new node is active
             (it pulled its shards) and until every node's series count is within ±15 % of the
             mean (old copies handed over and deleted)
  hints      a 3-node RF 3 cluster keeps ingesting while one node is down (kill -9); time from
             its restart until every hint is replayed, and the replay rate
  query      the same queries against a 1-node cluster and a 3-node RF 3 cluster holding the
             same data: p50/p99 latency, i.e. the fan-out overhead

  scripts/bench-cluster.py [--only ingest,rebalance,hints,query] [--hosts 120] [--scrapes 240]
                           [--no-build] [--out FILE]

Everything runs on this machine: with 2 cores, several nodes share the same CPUs, so cluster
throughput measures per-core efficiency of the replication path, not scale-out.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "Cluster", "cluster")


def log(msg):
    print("[bench-cluster] " + msg, file=sys.stderr, flush=True)


def bin_path():
    out = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    return out.stdout.strip()


class Cluster:
    def __init__(self, binary, port_base, flags, zones=""):
        self.dir = tempfile.mkdtemp(prefix="starling-bench-cluster-")
        self.port_base = port_base
        self.flags = flags
        # No zones by default: with three zones and RF 3 every zone holds a copy of every shard,
        # so a zone with one node holds everything and "balanced" would mean something else.
        self.env = dict(os.environ, CLUSTER_DIR=self.dir, HTTP_BASE=str(port_base), GOSSIP_BASE=str(port_base + 100),
                        PEER_BASE=str(port_base + 200), STARLING_BIN=binary, NFT_TABLE="starling_bench", CLUSTER_ZONES=zones)

    def run(self, *argv, timeout=900):
        p = subprocess.run([CLUSTER, *argv], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("Cluster/cluster %s failed:\n%s" % (" ".join(argv), p.stdout))
        return p.stdout

    def up(self, n):
        self.run("up", str(n), "--", *self.flags)
        self.wait_active(list(range(1, n + 1)))

    def add(self):
        self.run("add", "--", *self.flags)

    def clean(self):
        try:
            self.run("clean", timeout=300)
        except Exception as e:  # noqa: BLE001
            log("cleanup: %s" % e)

    def url(self, k):
        return "http://127.0.0.1:%d" % (self.port_base + k)

    def token(self):
        with open(os.path.join(self.dir, "admin-token")) as f:
            return f.read().strip()

    def pid(self, k):
        with open(os.path.join(self.dir, "node%d" % k, "pid")) as f:
            return int(f.read().strip())

    def get(self, k, path, timeout=60):
        req = urllib.request.Request(self.url(k) + path, headers={"Authorization": "Bearer " + self.token()})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()

    def metric(self, k, name):
        for line in self.get(k, "/metrics").decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def active(self, k):
        members = json.loads(self.get(k, "/api/v1/cluster/members", timeout=5))["data"]["members"]
        return {m["name"] for m in members if m["status"] == "alive" and m["state"] == "active"}

    def wait_active(self, nodes, timeout=900):
        want = {"node%d" % k for k in nodes}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all(want <= self.active(k) for k in nodes):
                    return
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.2)
        raise RuntimeError("nodes %s not active within %d s" % (nodes, timeout))


def ingest(bench, cluster, nodes, hosts, scrapes, connections, seed=1, verify=True):
    """Runs starling-bench against every node; returns its JSON result."""
    out = os.path.join(cluster.dir, "result-%d.json" % time.time_ns())
    argv = [bench, "ingest", "--url", cluster.url(1), "--protocol", "remote-write", "--hosts", str(hosts),
            "--scrapes", str(scrapes), "--connections", str(connections), "--token", cluster.token(),
            "--server-pid", str(cluster.pid(1)), "--seed", str(seed), "--json", out, "--verify" if verify else "--no-verify"]
    for k in nodes[1:]:
        argv += ["--also-url", cluster.url(k), "--also-server-pid", str(cluster.pid(k))]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stderr.write(p.stdout)
    with open(out) as f:
        return json.loads(f.readline())


def bench_ingest(args, binary, bench):
    rows = []
    for nodes, rf in [(1, 1), (3, 1), (3, 3), (5, 1), (5, 3)]:
        c = Cluster(binary, args.port_base, ["--replication-factor", str(rf), "--log-level", "warning"])
        try:
            c.up(nodes)
            log("ingest: %d node(s), RF %d" % (nodes, rf))
            r = ingest(bench, c, list(range(1, nodes + 1)), args.hosts, args.scrapes, max(4, nodes))
            cpu_us = r["serverCPUSeconds"] * 1e6 / max(r["acceptedSamples"], 1) if r.get("serverCPUSeconds") else float("nan")
            rows.append((nodes, rf, r["samplesPerSecond"], r["p50Ms"], r["p99Ms"], cpu_us,
                         "yes" if r.get("exportedSamples") == r["acceptedSamples"] else "NO (%s)" % r.get("exportedSamples")))
        finally:
            c.clean()
    base = rows[0][2]
    lines = ["| nodes | RF | samples/s | vs one node | p50 / p99 ms | server CPU µs/sample (all nodes) | all read back |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for n, rf, sps, p50, p99, cpu, ok in rows:
        lines.append("| %d | %d | %s | %.2f× | %.1f / %.1f | %.2f | %s |" % (n, rf, "{:,.0f}".format(sps), sps / base, p50, p99, cpu, ok))
    return "\n".join(lines)


def series_counts(c, nodes):
    return {k: int(c.metric(k, "starling_storage_series")) for k in nodes}


def bench_rebalance(args, binary, bench):
    """3 → 5 nodes, one at a time, on a loaded RF 3 cluster; queries checked throughout."""
    c = Cluster(binary, args.port_base, ["--log-level", "warning", "--set", "cluster.handoff_grace=0s"])
    try:
        c.up(3)
        r = ingest(bench, c, [1, 2, 3], args.hosts, args.scrapes, 4, verify=False)
        samples = r["acceptedSamples"]
        series = r["series"]
        t_query = time.time()
        expected = query_count(c, 1, t_query)
        rows = []
        for k in (4, 5):
            nodes = list(range(1, k + 1))
            log("rebalance: %d series, %d samples loaded; adding node %d" % (series, samples, k))
            t0 = time.monotonic()
            c.add()
            wrong = 0
            checks = 0
            active_at = None
            while True:
                # Queries must not change while shards move: every running node answers the
                # full count.
                for q in nodes:
                    try:
                        got = query_count(c, q, t_query)
                    except Exception:  # noqa: BLE001 - the new node may not serve yet
                        continue
                    checks += 1
                    if got != expected:
                        wrong += 1
                if active_at is None:
                    try:
                        if all({"node%d" % n for n in nodes} <= c.active(n) for n in nodes):
                            active_at = time.monotonic() - t0
                    except Exception:  # noqa: BLE001
                        pass
                counts = series_counts(c, nodes)
                mean = sum(counts.values()) / len(nodes)
                if active_at is not None and sum(counts.values()) == 3 * series and all(abs(v - mean) <= 0.15 * mean for v in counts.values()):
                    break
                if time.monotonic() - t0 > 1800:
                    raise RuntimeError("not balanced after 30 min: %s" % counts)
                time.sleep(0.5)
            rows.append((k, active_at, time.monotonic() - t0, counts, checks, wrong))
        lines = ["%s series, %s samples (each stored 3 times); `cluster.handoff_grace=0s`, so old copies go at the next release round (every 30 s)." % ("{:,}".format(series), "{:,}".format(samples)),
                 "",
                 "| grow to | new node active | balanced (±15 %, old copies deleted) | series per node after | count() checks during the move | wrong answers |",
                 "| ---: | ---: | ---: | --- | ---: | ---: |"]
        for k, active, balanced, counts, checks, wrong in rows:
            lines.append("| %d nodes | %.1f s | %.1f s | %s | %d | %d |" % (k, active, balanced, ", ".join(str(counts[n]) for n in sorted(counts)), checks, wrong))
        return "\n".join(lines)
    finally:
        c.clean()


def query_count(c, k, t):
    body = json.loads(c.get(k, "/api/v1/query?" + urllib.parse.urlencode({"query": 'count({job="node"})', "time": "%.3f" % t})))
    if body.get("warnings"):
        return -1
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def bench_hints(args, binary, bench):
    c = Cluster(binary, args.port_base, ["--log-level", "warning"])
    try:
        c.up(3)
        c.run("kill", "3")
        log("hints: node 3 down; ingesting through nodes 1 and 2")
        r = ingest(bench, c, [1, 2], args.hosts, args.scrapes, 4, verify=False)
        pending = sum(c.metric(k, "starling_cluster_hints_pending_samples") for k in [1, 2])
        log("hints: %d samples pending for node 3; restarting it" % pending)
        t0 = time.monotonic()
        c.run("restart", "3")
        while sum(c.metric(k, "starling_cluster_hints_pending_samples") for k in [1, 2]) > 0:
            if time.monotonic() - t0 > 1800:
                raise RuntimeError("hints not replayed after 30 min")
            time.sleep(0.2)
        t = time.monotonic() - t0
        return ("| samples written while down | hinted samples | replayed in (from restart) | replay rate |\n"
                "| ---: | ---: | ---: | ---: |\n"
                "| %s | %s | %.1f s | %s samples/s |" % ("{:,}".format(r["acceptedSamples"]), "{:,.0f}".format(pending), t,
                                                      "{:,.0f}".format(pending / max(t, 1e-9))))
    finally:
        c.clean()


QUERIES = [
    ("rate summed by instance", 'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))'),
    ("avg by region", "avg by (region) (node_memory_MemAvailable_bytes)"),
    ("max_over_time 1h", "max_over_time(node_load1[1h])"),
    ("topk", "topk(5, rate(node_network_receive_bytes_total[5m]))"),
    ("count all", 'count({job="node"})'),
    ("single series", 'node_load1{instance=~"node-0001.*"}'),
]


def query_latency(c, t, runs):
    out = {}
    for name, q in QUERIES:
        times = []
        for _ in range(runs):
            started = time.monotonic()
            c.get(1, "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": "%.3f" % t}))
            times.append((time.monotonic() - started) * 1000)
        times.sort()
        out[name] = (statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))])
    return out


def bench_query(args, binary, bench):
    results = {}
    for nodes, rf in [(1, 1), (3, 3)]:
        c = Cluster(binary, args.port_base, ["--replication-factor", str(rf), "--log-level", "warning"])
        try:
            c.up(nodes)
            r = ingest(bench, c, list(range(1, nodes + 1)), args.hosts, args.scrapes, 4, verify=False)
            end_s = time.time()
            query_latency(c, end_s, 3)  # warm up
            results[(nodes, rf)] = query_latency(c, end_s, args.query_runs)
        finally:
            c.clean()
    lines = ["| query | one node p50 / p99 ms | 3 nodes RF 3 p50 / p99 ms | overhead at p50 |", "| --- | ---: | ---: | ---: |"]
    for name, _ in QUERIES:
        a = results[(1, 1)][name]
        b = results[(3, 3)][name]
        lines.append("| %s | %.1f / %.1f | %.1f / %.1f | %+.1f ms |" % (name, a[0], a[1], b[0], b[1], b[0] - a[0]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="ingest,rebalance,hints,query")
    ap.add_argument("--hosts", type=int, default=120, help="scrape targets, ~100 series each (default 120)")
    ap.add_argument("--scrapes", type=int, default=240, help="scrapes per target, 15 s apart (default 240 = 1 h)")
    ap.add_argument("--query-runs", type=int, default=30)
    ap.add_argument("--port-base", type=int, default=21400)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", help="also append the tables to FILE")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "starling"], cwd=ROOT, check=True)
        subprocess.run(["swift", "build", "-c", "release", "--product", "starling-bench"], cwd=ROOT, check=True)
    bindir = bin_path()
    binary, bench = os.path.join(bindir, "starling"), os.path.join(bindir, "starling-bench")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE, text=True).stdout.strip()
    report = ["Cluster benchmarks at %s, %d hosts × %d scrapes, load average %s" % (commit, args.hosts, args.scrapes, os.getloadavg()[0])]
    for part in args.only.split(","):
        fn = {"ingest": bench_ingest, "rebalance": bench_rebalance, "hints": bench_hints, "query": bench_query}[part]
        table = fn(args, binary, bench)
        report.append("\n### %s\n\n%s" % (part, table))
        print(report[-1], flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
