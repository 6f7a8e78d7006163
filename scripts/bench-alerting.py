#!/usr/bin/env python3
"""Alerting benchmarks on loopback (docs/benchmarks.md, "Alerting").

Three `starling serve` processes (release build) run by Cluster/cluster, a real HTTP webhook
receiver, and:

  latency    threshold crossed → webhook received, in a steady cluster and when the node that
             evaluates the rule is killed right after the crossing (it is restarted between
             trials); median and p99
  failover   kill of the evaluating node → first evaluation by its successor
  rules      10,000 simple alerting rules in 100 groups spread over the cluster, evaluated every
             10 s for a minute: rule evaluations per second per node, and the nodes' CPU

  scripts/bench-alerting.py [--only latency,failover,rules] [--trials 20] [--no-build]

Rule interval 5 s, group_wait 1 s in the latency runs (what bounds the figure; a production
setup with 1 min intervals adds up to a minute).
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
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import importlib.util  # noqa: E402

spec = importlib.util.spec_from_file_location("bench_cluster", os.path.join(ROOT, "scripts", "bench-cluster.py"))
bench_cluster = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_cluster)
Cluster = bench_cluster.Cluster
RECEIVER = os.path.join(ROOT, "Tests", "StarlingIntegrationTests", "Support", "webhook-receiver.py")


def log(msg):
    print("[bench-alerting] " + msg, file=sys.stderr, flush=True)


class Receiver:
    def __init__(self, workdir):
        self.file = os.path.join(workdir, "webhooks.jsonl")
        port_file = os.path.join(workdir, "webhook-port")
        open(self.file, "w").close()
        self.proc = subprocess.Popen([sys.executable, RECEIVER, self.file, port_file], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(port_file):
                self.port = int(open(port_file).read())
                return
            time.sleep(0.05)
        raise RuntimeError("webhook receiver did not start")

    def notifications(self):
        out = []
        with open(self.file) as f:
            for line in f:
                body = json.loads(line)["body"]
                for a in body.get("alerts", []):
                    out.append((body["status"], a["labels"], a["status"]))
        return out

    def stop(self):
        self.proc.kill()


def write(c, k, line):
    req = urllib.request.Request(c.url(k) + "/write?precision=ms", data=line.encode(), method="POST",
                                 headers={"Authorization": "Bearer " + c.token()})
    urllib.request.urlopen(req, timeout=10).read()


def leader_of_rules(c, nodes):
    for k in nodes:
        try:
            if c.metric(k, "starling_rule_groups_led") >= 1:
                return k
        except Exception:  # noqa: BLE001
            continue
    return None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def setup(binary, port_base, workdir, rules_yaml, am_yaml, extra=()):
    with open(os.path.join(workdir, "rules.yml"), "w") as f:
        f.write(rules_yaml)
    with open(os.path.join(workdir, "am.yml"), "w") as f:
        f.write(am_yaml)
    flags = ["--set", "cluster.profile=lan", "--log-level", "warning",
             "--set", "rules.files=" + os.path.join(workdir, "rules.yml"),
             "--set", "alerting.config_file=" + os.path.join(workdir, "am.yml"), *extra]
    c = Cluster(binary, port_base, flags)
    c.up(3)
    return c


def bench_latency(args, binary):
    workdir = tempfile.mkdtemp(prefix="starling-bench-alerting-")
    rx = Receiver(workdir)
    rules = """groups:
  - name: latency
    interval: 5s
    rules:
      - alert: LatencyProbe
        expr: lat_value > 0
"""
    am = """route:
  receiver: hook
  group_by: [trial]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:%d/hook
""" % rx.port
    c = setup(binary, args.port_base, workdir, rules, am)
    results = {"steady": [], "leader killed": []}
    duplicates = 0
    try:
        trial = 0
        for kind, n in (("steady", args.trials), ("leader killed", max(3, args.trials // 4))):
            for _ in range(n):
                trial += 1
                live = [k for k in (1, 2, 3)]
                victim = leader_of_rules(c, live) if kind == "leader killed" else None
                writer = next(k for k in live if k != victim)
                t0 = time.time()
                write(c, writer, "lat,trial=%d value=1 %d\n" % (trial, int(t0 * 1000)))
                if victim:
                    time.sleep(0.5)
                    c.run("kill", str(victim))
                got = None
                while time.time() - t0 < 120:
                    if any(l.get("trial") == str(trial) and s == "firing" for _, l, s in rx.notifications()):
                        got = time.time() - t0
                        break
                    time.sleep(0.05)
                if got is None:
                    raise RuntimeError("trial %d (%s): no webhook within 120 s" % (trial, kind))
                results[kind].append(got)
                log("%s trial %d: %.2f s" % (kind, trial, got))
                write(c, writer, "lat,trial=%d value=0 %d\n" % (trial, int(time.time() * 1000)))
                if victim:
                    c.run("restart", str(victim))
                    c.wait_active([1, 2, 3])
                    time.sleep(2)
        time.sleep(8)
        per_trial = {}
        for _, l, s in rx.notifications():
            if s == "firing":
                per_trial[l.get("trial")] = per_trial.get(l.get("trial"), 0) + 1
        duplicates = sum(v - 1 for v in per_trial.values() if v > 1)
    finally:
        c.clean()
        rx.stop()
    lines = ["| case | trials | median | p99 | max | duplicate firing notifications |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for kind, xs in results.items():
        lines.append("| %s | %d | %.2f s | %.2f s | %.2f s | %s |" % (kind, len(xs), statistics.median(xs), pct(xs, 99), max(xs),
                                                                 duplicates if kind == "leader killed" else "–"))
    return "\n".join(lines)


def bench_failover(args, binary):
    workdir = tempfile.mkdtemp(prefix="starling-bench-alerting-")
    rules = """groups:
  - name: failover
    interval: 1s
    rules:
      - alert: Probe
        expr: vector(1) > 0
"""
    am = "route: {receiver: none}\nreceivers: [{name: none}]\n"
    c = setup(binary, args.port_base, workdir, rules, am)
    times = []
    try:
        for i in range(args.failovers):
            victim = None
            while victim is None:
                victim = leader_of_rules(c, [1, 2, 3])
                time.sleep(0.1)
            others = [k for k in (1, 2, 3) if k != victim]
            t0 = time.time()
            c.run("kill", str(victim))
            first = None
            while time.time() - t0 < 60 and first is None:
                for k in others:
                    try:
                        groups = json.loads(c.get(k, "/api/v1/rules", timeout=5))["data"]["groups"]
                    except Exception:  # noqa: BLE001
                        continue
                    for g in groups:
                        last = g.get("lastEvaluation", "")
                        if last.startswith("0001"):
                            continue
                        ts = bench_cluster_parse(last)
                        if ts > t0 and g["rules"][0]["health"] == "ok":
                            first = ts - t0
                time.sleep(0.05)
            if first is None:
                raise RuntimeError("no successor evaluated within 60 s")
            times.append(first)
            log("failover %d: %.2f s" % (i + 1, first))
            c.run("restart", str(victim))
            c.wait_active([1, 2, 3])
            time.sleep(3)
    finally:
        c.clean()
    return ("| failovers | median | p99 | max |\n| ---: | ---: | ---: | ---: |\n| %d | %.2f s | %.2f s | %.2f s |"
            % (len(times), statistics.median(times), pct(times, 99), max(times)))


def bench_cluster_parse(s):
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def bench_rules(args, binary):
    workdir = tempfile.mkdtemp(prefix="starling-bench-alerting-")
    groups = []
    for g in range(100):
        rules = "\n".join("      - alert: R%d_%d\n        expr: ev_value{k=\"%d\"} > 100" % (g, r, g * 100 + r) for r in range(100))
        groups.append("  - name: g%d\n    interval: 10s\n    rules:\n%s" % (g, rules))
    rules_yaml = "groups:\n" + "\n".join(groups) + "\n"
    am = "route: {receiver: none}\nreceivers: [{name: none}]\n"
    c = setup(binary, args.port_base, workdir, rules_yaml, am)
    try:
        lines = "".join("ev,k=%d value=%d %d\n" % (i, i % 200, int(time.time() * 1000)) for i in range(10000))
        write(c, 1, lines)
        time.sleep(15)
        before = {k: (c.metric(k, "starling_rule_evaluations_total"), bench_cluster_cpu(c.pid(k))) for k in (1, 2, 3)}
        t0 = time.time()
        time.sleep(60)
        dt = time.time() - t0
        rows = []
        for k in (1, 2, 3):
            evals = c.metric(k, "starling_rule_evaluations_total") - before[k][0]
            cpu = bench_cluster_cpu(c.pid(k)) - before[k][1]
            led = c.metric(k, "starling_rule_groups_led")
            rows.append((k, led, evals * 100 / dt, cpu / dt * 100))
    finally:
        c.clean()
    lines = ["| node | groups evaluated | rule evaluations/s | CPU (% of one core) |", "| ---: | ---: | ---: | ---: |"]
    for k, led, eps, cpu in rows:
        lines.append("| %d | %d | %s | %.0f %% |" % (k, led, "{:,.0f}".format(eps), cpu))
    total = sum(r[2] for r in rows)
    lines.append("| all | 100 | %s | %.0f %% |" % ("{:,.0f}".format(total), sum(r[3] for r in rows)))
    return "\n".join(lines)


def bench_cluster_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / ticks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="latency,failover,rules")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--failovers", type=int, default=5)
    ap.add_argument("--port-base", type=int, default=23400)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "starling"], cwd=ROOT, check=True)
    binary = os.path.join(bench_cluster.bin_path(), "starling")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE, text=True).stdout.strip()
    print("Alerting benchmarks at %s, load average %.1f" % (commit, os.getloadavg()[0]))
    for part in args.only.split(","):
        table = {"latency": bench_latency, "failover": bench_failover, "rules": bench_rules}[part](args, binary)
        print("\n### %s\n\n%s" % (part, table), flush=True)


if __name__ == "__main__":
    main()
