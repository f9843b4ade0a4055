#!/usr/bin/env python3
"""Host collection and scrape cost of prismwatch beside Debian's node_exporter, in one run.

Prints, for both: CPU time per collection and per scrape, scrape latency p50/p99, RSS; for
prismwatch also history bytes per sample and its idle CPU at a 1 s host interval. Ratios are
prismwatch / node_exporter measured in this run on this machine.

    python3 benches/host_vs_node_exporter.py            # about 3 minutes
    python3 benches/host_vs_node_exporter.py --hold 3660  # keep one full hour of history first

node_exporter collects on every scrape, so its "per scrape" cost is also its collection cost.
prismwatch collects on its own interval and a scrape only renders stored values.
"""

import argparse
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def wait_http(port, path="/metrics", timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"nothing answered on port {port}")


def scrape_burst(port, count):
    """Sequential scrapes on one keep-alive connection; returns latencies in seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
        latencies.append(time.perf_counter() - start)
        assert body
    conn.close()
    return latencies


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def metric(port, name):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=60, help="seconds of idle CPU measurement")
    parser.add_argument("--scrapes", type=int, default=500, help="scrapes per exporter")
    parser.add_argument("--hold", type=float, default=0, help="seconds to run before measuring RSS (3660 = one full hour of history)")
    args = parser.parse_args()

    node_exporter = shutil.which("prometheus-node-exporter")
    if not node_exporter:
        sys.exit("install node_exporter: apt-get install -y prometheus-node-exporter")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "prismwatch")

    state = tempfile.mkdtemp()
    pw_port, ne_port = free_port(), free_port()
    pw = subprocess.Popen([binary, "--listen", f"127.0.0.1:{pw_port}", "--state-dir", state,
                           "--host-interval", "1s", "--log-level", "warn"])
    ne = subprocess.Popen([node_exporter, f"--web.listen-address=127.0.0.1:{ne_port}", "--log.level=warn"],
                          stderr=subprocess.DEVNULL)
    try:
        wait_http(pw_port)
        wait_http(ne_port)
        time.sleep(5)

        # Idle: no scrapes; prismwatch collects once a second, node_exporter does nothing.
        pw_cpu0, ne_cpu0 = cpu_seconds(pw.pid), cpu_seconds(ne.pid)
        time.sleep(args.idle)
        pw_idle = cpu_seconds(pw.pid) - pw_cpu0
        ne_idle = cpu_seconds(ne.pid) - ne_cpu0
        pw_per_collection = pw_idle / args.idle  # one collection per second

        # Scrape bursts, one exporter at a time.
        results = {}
        for name, port, proc in (("prismwatch", pw_port, pw), ("node_exporter", ne_port, ne)):
            scrape_burst(port, 20)  # warm-up
            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            latencies = scrape_burst(port, args.scrapes)
            elapsed = time.perf_counter() - t0
            cpu = cpu_seconds(proc.pid) - cpu0
            if name == "prismwatch":
                cpu -= pw_idle / args.idle * elapsed  # remove background collection
            results[name] = {
                "cpu_per_scrape": max(cpu, 0) / args.scrapes,
                "p50": percentile(latencies, 0.50),
                "p99": percentile(latencies, 0.99),
            }

        if args.hold:
            print(f"holding {args.hold:.0f} s so the history fills up ...", flush=True)
            time.sleep(args.hold)
        samples = metric(pw_port, "prismwatch_history_samples") or 0
        sample_bytes = metric(pw_port, "prismwatch_history_sample_bytes") or 0
        history_bytes = metric(pw_port, "prismwatch_history_memory_bytes") or 0
        series = metric(pw_port, "prismwatch_history_series") or 0
        pw_rss, ne_rss = rss_bytes(pw.pid), rss_bytes(ne.pid)
        uptime = time.time() - os.stat(f"/proc/{pw.pid}").st_ctime
    finally:
        pw.terminate()
        ne.terminate()
        pw.wait()
        ne.wait()
        shutil.rmtree(state, ignore_errors=True)

    bytes_per_sample = sample_bytes / samples if samples else float("nan")
    # What one full hour at this series count would add, at the measured bytes per sample.
    hour_samples = series * 3600
    projected_rss = pw_rss + max(0, hour_samples - samples) * (history_bytes / samples if samples else 0)
    p, n = results["prismwatch"], results["node_exporter"]
    print()
    print(f"{'':32} {'prismwatch':>14} {'node_exporter':>14} {'ratio':>8}")
    print(f"{'CPU per collection (ms)':32} {pw_per_collection*1e3:14.3f} {n['cpu_per_scrape']*1e3:14.3f} {pw_per_collection/n['cpu_per_scrape']:8.3f}")
    print(f"{'CPU per scrape (ms)':32} {p['cpu_per_scrape']*1e3:14.3f} {n['cpu_per_scrape']*1e3:14.3f} {p['cpu_per_scrape']/n['cpu_per_scrape']:8.3f}")
    print(f"{'scrape latency p50 (ms)':32} {p['p50']*1e3:14.3f} {n['p50']*1e3:14.3f} {p['p50']/n['p50']:8.3f}")
    print(f"{'scrape latency p99 (ms)':32} {p['p99']*1e3:14.3f} {n['p99']*1e3:14.3f} {p['p99']/n['p99']:8.3f}")
    print(f"{'RSS (MiB)':32} {pw_rss/2**20:14.1f} {ne_rss/2**20:14.1f} {pw_rss/ne_rss:8.3f}")
    print(f"{'idle CPU, 1 s interval (% core)':32} {pw_idle/args.idle*100:14.3f} {ne_idle/args.idle*100:14.3f}")
    print()
    print(f"history: {series:.0f} series, {samples:.0f} samples after {uptime:.0f} s, "
          f"{bytes_per_sample:.3f} bytes/sample in chunks, {history_bytes/2**10:.0f} KiB in all")
    if samples < hour_samples * 0.95:
        print(f"projected RSS with one full hour ({hour_samples:.0f} samples): {projected_rss/2**20:.1f} MiB "
              f"(ratio {projected_rss/ne_rss:.3f}); run with --hold 3660 to measure it")
    else:
        print("the history holds a full hour: the RSS above is measured with it")


if __name__ == "__main__":
    main()
