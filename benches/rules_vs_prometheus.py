#!/usr/bin/env python3
"""Rule evaluation of prismwatch beside Prometheus, in one run, on the same rules and samples.

Runs `cargo bench --bench rules`, which measures prismwatch; then the same bench with `--dump`,
which writes the 1,000 rules and the 10,000 series: the hour ending now as OpenMetrics, and the
next 20 minutes as one exposition per 15 s scrape. Backfills the hour into a Prometheus TSDB with
promtool; starts the Debian Prometheus (2.42) on it with the same rule file, scraping the next
minutes from a small server here (samples carry their own timestamps and labels); and reads each
group's evaluation time from /api/v1/rules once per 15 s interval. Prints both, the per-shape
times and the ratios prismwatch / Prometheus.

    python3 benches/rules_vs_prometheus.py               # about 4 minutes
    python3 benches/rules_vs_prometheus.py --intervals 12

Prometheus evaluates at the wall clock over one hour of history and a scrape at most 15 s old,
as prismwatch's rounds do. Its groups run concurrently, staggered over the interval; prismwatch's
rounds run the groups one after the other on one thread. Both figures are sums of per-group
wall times. Prometheus reads the hour from a persisted block (page cache) and the last minutes
from its head; prismwatch holds everything in memory.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
SCRAPE_MS = 15_000
HOUR_STEPS = 240
EXTRA_STEPS = 80


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def get_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


def wait_ready(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("prometheus exited; see its log above")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"prometheus did not become ready on port {port}")


def snapshot(port):
    """Each group's last evaluation: (timestamp, seconds), and each rule's (health, seconds)."""
    groups = get_json(port, "/api/v1/rules")["data"]["groups"]
    out = {}
    for g in groups:
        rules = [(r.get("health"), r.get("lastError", ""), r.get("evaluationTime", 0.0)) for r in g["rules"]]
        out[g["name"]] = (g.get("lastEvaluation"), g.get("evaluationTime", 0.0), rules)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--intervals", type=int, default=8, help="15 s intervals of Prometheus to measure")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            sys.exit("install Prometheus: apt-get install -y prometheus")
    version = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.split("\n")[0]

    work = tempfile.mkdtemp(prefix="rules-vs-prometheus-")
    dump = os.path.join(work, "dump")
    try:
        # 1. prismwatch, measured by the Rust bench.
        result = os.path.join(work, "result.json")
        bench = subprocess.run(
            ["cargo", "bench", "--quiet", "--bench", "rules", "--", "--result", result],
            cwd=ROOT, check=True, capture_output=True, text=True)
        print(bench.stdout.rstrip())
        rust = json.load(open(result))

        # 2. The same rules and samples, the first hour ending now, in a Prometheus TSDB.
        end_ms = int(time.time() * 1000)
        end_ms -= end_ms % SCRAPE_MS
        start_ms = end_ms - (HOUR_STEPS - 1) * SCRAPE_MS
        subprocess.run(
            ["cargo", "bench", "--quiet", "--bench", "rules", "--", "--dump", dump, "--end-ms", str(end_ms)],
            cwd=ROOT, check=True, capture_output=True, text=True)
        shapes = open(os.path.join(dump, "shapes.txt")).read().splitlines()
        data = os.path.join(work, "data")
        started = time.perf_counter()
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                        os.path.join(dump, "series.om"), data],
                       check=True, capture_output=True, text=True)
        backfill_s = time.perf_counter() - started
        os.remove(os.path.join(dump, "series.om"))

        # The scrapes after the hour, each served from when its timestamp has passed.
        live = os.path.join(dump, "live")

        class Exposition(BaseHTTPRequestHandler):
            def do_GET(self):
                step = (int(time.time() * 1000) - start_ms) // SCRAPE_MS
                step = min(max(step, HOUR_STEPS), HOUR_STEPS + EXTRA_STEPS - 1)
                body = open(os.path.join(live, f"{step}.prom"), "rb").read()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Exposition)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        # 3. Prometheus with the same rules, scraping the server.
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  evaluation_interval: 15s\n  scrape_interval: 15s\n"
                    "rule_files:\n  - %s\n" % os.path.join(dump, "rules.yml")
                    + "scrape_configs:\n  - job_name: exporters\n    honor_labels: true\n"
                    "    honor_timestamps: true\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % server.server_address[1])
        port = free_port()
        log = open(os.path.join(work, "prometheus.log"), "w")
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}",
             "--storage.tsdb.retention.time=30d", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, prom)
            # Let every group evaluate a few times (the first evaluation pages in the block and
            # creates every alert) and the scrapes fill the short windows before measuring.
            time.sleep(60)
            rounds, last_seen, per_rule = [], None, {}
            cpu0, t0 = cpu_seconds(prom.pid), time.time()
            for _ in range(args.intervals):
                time.sleep(15)
                snap = snapshot(port)
                stamps = {name: s[0] for name, s in snap.items()}
                if stamps == last_seen:
                    continue
                last_seen = stamps
                rounds.append(sum(s[1] for s in snap.values()) * 1e3)
                for name, (_, _, rules) in snap.items():
                    index = int(name.split("-")[1])
                    for slot, (health, error, seconds) in enumerate(rules):
                        if health != "ok" or error:
                            sys.exit(f"Prometheus: {name} rule {slot}: {health} {error}")
                        per_rule.setdefault(index * 20 + slot, []).append(seconds)
            cpu_per_interval = (cpu_seconds(prom.pid) - cpu0) / ((time.time() - t0) / 15)
            prom_rss = rss_bytes(prom.pid)
        finally:
            prom.terminate()
            prom.wait(timeout=30)
            server.shutdown()

        # 4. Figures and ratios.
        prom_median = statistics.median(rounds)
        rust_median = rust["round_median_ms"]
        prom_shape = {}
        for index, times in per_rule.items():
            prom_shape.setdefault(shapes[index], []).append(statistics.median(times) * 1e6)
        print()
        print(f"== rules: prismwatch vs {version} ==")
        print(f"prometheus: backfill of {rust['series']} series in {backfill_s:.1f} s; "
              f"{len(rounds)} intervals measured")
        print(f"prometheus: sum of the {len(last_seen)} groups' evaluation times: median {prom_median:.1f} ms, "
              f"min {min(rounds):.1f} ms, max {max(rounds):.1f} ms; "
              f"process CPU {cpu_per_interval * 1e3:.0f} ms per 15 s interval; RSS {prom_rss / 1048576:.1f} MiB")
        print(f"prismwatch: one round of all groups: median {rust_median:.1f} ms; "
              f"history {rust['history_bytes'] / 1048576:.1f} MiB, process RSS {rust['rss_bytes'] / 1048576:.1f} MiB")
        print(f"ratio prismwatch / Prometheus: evaluation time {rust_median / prom_median:.2f}x; "
              f"RSS {rust['rss_bytes'] / prom_rss:.2f}x (Prometheus' RSS includes its TSDB, web UI and Go heap)")
        print("per shape, mean us per rule (prismwatch, Prometheus, ratio), slowest prismwatch first:")
        for shape, us in sorted(rust["shape_us"].items(), key=lambda kv: -kv[1]):
            p = statistics.mean(prom_shape.get(shape, [float("nan")]))
            print(f"  {us:8.1f} {p:8.1f} {us / p:6.2f}x  {shape}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
