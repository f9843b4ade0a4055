#!/usr/bin/env python3
"""Notification latency and backlog, against the release build and a real SMTP server
(aiosmtpd, tests/common/smtp_sink.py, with Debian's /usr/bin/python3).

    cargo build --release && python3 benches/notify_load.py        # about 2 minutes

1. Latency: 20 alerting rules (`for: 0s`, group interval 1 s, `group_wait: 0s`, one group per
   alert) whose condition becomes true at known instants 0.5 s apart; for each, the time from
   that instant to the mail server's acceptance of its mail. Prints the median and maximum;
   the aim is less than the evaluation interval plus 1 s.
2. Backlog: with the mail server down, 100 alerts (each its own group) to a receiver of 100
   recipients queue 10,000 notifications (one envelope each); the RSS of the daemon and the
   store's size are read with the backlog in place, then the server comes up and the drain
   time is measured until every row is delivered.
"""

import argparse
import email
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from notify_durability import ROOT, free_port, start_daemon, start_smtp  # noqa: E402


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def config(work, smtp_port, rules, to):
    alerting = os.path.join(work, "alertmanager.yml")
    with open(alerting, "w") as f:
        f.write(
            f"global:\n  smtp_smarthost: 127.0.0.1:{smtp_port}\n  smtp_from: a@example.com\n"
            "  smtp_require_tls: false\nroute:\n  receiver: oncall\n  group_by: ['...']\n"
            "  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n"
            f"  - name: oncall\n    email_configs:\n      - to: {json.dumps(to)}\n"
        )
    path = os.path.join(work, "prismwatch.toml")
    with open(path, "w") as f:
        f.write(
            f"rules = [{json.dumps(rules)}]\nexternal_labels = {{ instance = \"web-1\" }}\n[host]\nenabled = false\n"
            f"[alerting]\nconfig_file = {json.dumps(alerting)}\n"
        )
    return path


def mails(out):
    if not os.path.exists(out):
        return []
    with open(out, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def latency(binary):
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        out = os.path.join(work, "mails.jsonl")
        sink = start_smtp(port, out)
        opens = {f"Open{i:02}": time.time() + 8 + i * 0.5 for i in range(20)}
        rules = os.path.join(work, "latency.rules.yml")
        with open(rules, "w") as f:
            f.write("groups:\n  - name: latency\n    interval: 1s\n    rules:\n")
            for name, at in opens.items():
                f.write(f"      - alert: {name}\n        expr: vector(time()) >= {at:.3f}\n")
        with open(os.path.join(work, "log"), "w") as log:
            daemon = start_daemon(binary, config(work, port, rules, "a@example.com"), os.path.join(work, "state"), log)
            deadline = time.time() + 60
            while len(mails(out)) < 20 and time.time() < deadline:
                time.sleep(0.2)
            daemon.terminate()
            daemon.wait()
        sink.terminate()
        sink.wait()
        delays = []
        for mail in mails(out):
            subject = email.message_from_string(mail["data"])["Subject"] or ""
            name = subject.split()[1] if subject.startswith("[FIRING:1]") else ""
            if name in opens:
                delays.append(mail["at"] - opens[name])
        if len(delays) < 20:
            print(f"latency: only {len(delays)} of 20 mails arrived within 60 s")
        if delays:
            print(
                f"latency, condition true -> mail accepted, {len(delays)} alerts, 1 s evaluation interval: "
                f"median {statistics.median(delays):.3f} s, max {max(delays):.3f} s"
            )


def backlog(binary, count):
    with tempfile.TemporaryDirectory() as work:
        port = free_port()  # down
        out = os.path.join(work, "mails.jsonl")
        state = os.path.join(work, "state")
        rules = os.path.join(work, "backlog.rules.yml")
        groups, per_group = 100, max(count // 100, 1)
        count = groups * per_group
        with open(rules, "w") as f:
            f.write("groups:\n  - name: backlog\n    interval: 1s\n    rules:\n")
            for n in range(groups):
                f.write(f"      - alert: Backlog{n:03}\n        expr: vector(1)\n")
        to = ", ".join(f"r{i}@example.com" for i in range(per_group))
        db = os.path.join(state, "prismwatch.db")
        with open(os.path.join(work, "log"), "w") as log:
            daemon = start_daemon(binary, config(work, port, rules, to), state, log)

            def rows(where):
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                        return c.execute(f"SELECT count(*) FROM notify_outbox WHERE {where}").fetchone()[0]
                except sqlite3.Error:
                    return 0

            deadline = time.time() + 120
            while rows("1") < count and time.time() < deadline:
                time.sleep(0.2)
            time.sleep(3)
            size = sum(os.path.getsize(os.path.join(state, n)) for n in os.listdir(state) if n.startswith("prismwatch.db"))
            print(f"backlog: {rows('1')} notifications queued with the mail server down; RSS {rss_mib(daemon.pid):.1f} MiB, store {size / 1e6:.1f} MB")
            sink = start_smtp(port, out)
            started = time.time()
            deadline = started + 600
            while rows("state = 'delivered'") < count and time.time() < deadline:
                time.sleep(0.5)
            drained = time.time() - started
            delivered = rows("state = 'delivered'")
            print(
                f"backlog: {delivered} of {count} delivered in {drained:.1f} s "
                f"({count / drained:.0f} per second); RSS after {rss_mib(daemon.pid):.1f} MiB"
            )
            daemon.terminate()
            daemon.wait()
            sink.terminate()
            sink.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/prismwatch"))
    parser.add_argument("--backlog", type=int, default=10_000)
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary} is missing: run cargo build --release first")
    latency(args.binary)
    backlog(args.binary, args.backlog)


if __name__ == "__main__":
    main()
