#!/usr/bin/env python3
"""Never lost, never twice, counted: the notification durability scenario of
tests/notify_durability.rs run many times against the release build, printing how many
notifications were lost and how many arrived twice.

    cargo build --release && python3 benches/notify_durability.py --runs 100   # ~15 minutes

One run: the mail server is down (nothing listens on its port); rule Short fires and resolves
within 2 s and rule Long fires, so three notifications are queued in the outbox; the daemon is
killed with SIGKILL at a random moment 0-2.5 s after the third is queued; the mail server
(aiosmtpd, tests/common/smtp_sink.py, run with Debian's /usr/bin/python3) comes up; the daemon
restarts on the same state directory. Once three mails arrived (or 20 s passed), 3 s more are
waited for late duplicates. Expected: exactly [FIRING:1] Long, [FIRING:1] Short and [RESOLVED]
Short, each once. A lost notification is an expected subject that never came; a duplicate is
any subject (or Message-ID) that came more than once.
"""

import argparse
import email
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = ["[FIRING:1] Long (web-1 page)", "[FIRING:1] Short (web-1 page)", "[RESOLVED] Short (web-1 page)"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def window_rule(directory, name, start, until):
    path = os.path.join(directory, f"{name}.rules.yml")
    with open(path, "w") as f:
        f.write(
            f"groups:\n  - name: {name}\n    interval: 1s\n    rules:\n      - alert: {name}\n"
            f"        expr: vector(time()) > {start} < {until}\n        labels:\n          severity: page\n"
        )
    return path


def write_config(directory, smtp_port, rules):
    alerting = os.path.join(directory, "alertmanager.yml")
    with open(alerting, "w") as f:
        f.write(
            f"global:\n  smtp_smarthost: 127.0.0.1:{smtp_port}\n  smtp_from: a@example.com\n"
            "  smtp_require_tls: false\nroute:\n  receiver: oncall\n  group_by: [alertname]\n"
            "  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n"
            "  - name: oncall\n    email_configs:\n      - to: a@example.com\n        send_resolved: true\n"
        )
    config = os.path.join(directory, "prismwatch.toml")
    with open(config, "w") as f:
        quoted = ", ".join(json.dumps(r) for r in rules)
        f.write(
            f"rules = [{quoted}]\nexternal_labels = {{ instance = \"web-1\" }}\n[host]\nenabled = false\n"
            f"[alerting]\nconfig_file = {json.dumps(alerting)}\n"
        )
    return config


def outbox_rows(state_dir):
    path = os.path.join(state_dir, "prismwatch.db")
    if not os.path.exists(path):
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM notify_outbox").fetchone()[0]
    except sqlite3.Error:
        return 0


def start_daemon(binary, config, state_dir, log):
    listen = f"127.0.0.1:{free_port()}"
    return subprocess.Popen(
        [binary, "--config", config, "--state-dir", state_dir, "--listen", listen],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def start_smtp(port, out):
    sink = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(ROOT, "tests/common/smtp_sink.py"), str(port), out],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if sink.stdout.readline().strip() != "ready":
        sys.exit("aiosmtpd did not start (apt-get install python3-aiosmtpd)")
    return sink


def received(out):
    if not os.path.exists(out):
        return []
    with open(out, encoding="utf-8") as f:
        return [email.message_from_string(json.loads(line)["data"]) for line in f if line.strip()]


def one_run(binary, kill_after):
    with tempfile.TemporaryDirectory() as work:
        smtp_port = free_port()
        now = int(time.time())
        rules = [window_rule(work, "Short", now - 10, now + 2), window_rule(work, "Long", now - 10, now + 3600)]
        config = write_config(work, smtp_port, rules)
        state_dir = os.path.join(work, "state")
        out = os.path.join(work, "mails.jsonl")
        with open(os.path.join(work, "prismwatch.log"), "w") as log:
            daemon = start_daemon(binary, config, state_dir, log)
            deadline = time.time() + 20
            while outbox_rows(state_dir) < 3:
                if time.time() > deadline:
                    daemon.kill()
                    return None
                time.sleep(0.05)
            time.sleep(kill_after)
            daemon.kill()
            daemon.wait()
            sink = start_smtp(smtp_port, out)
            daemon = start_daemon(binary, config, state_dir, log)
            try:
                deadline = time.time() + 20
                while len(received(out)) < 3 and time.time() < deadline:
                    time.sleep(0.1)
                time.sleep(3)
                mails = received(out)
            finally:
                daemon.terminate()
                daemon.wait()
                sink.terminate()
                sink.wait()
    subjects = [m["Subject"] for m in mails]
    ids = [m["Message-ID"] for m in mails]
    lost = sum(1 for s in EXPECTED if s not in subjects)
    duplicated = (len(subjects) - len(set(subjects))) + (len(ids) - len(set(ids)))
    return lost, duplicated, subjects


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/prismwatch"))
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary} is missing: run cargo build --release first")
    total_lost = total_duplicated = failed_setups = 0
    for run in range(1, args.runs + 1):
        kill_after = random.uniform(0, 2.5)
        result = one_run(args.binary, kill_after)
        if result is None:
            failed_setups += 1
            print(f"run {run:3}: the three notifications were not queued within 20 s", flush=True)
            continue
        lost, duplicated, subjects = result
        total_lost += lost
        total_duplicated += duplicated
        mark = "" if lost == 0 and duplicated == 0 else f"  <- {sorted(subjects)}"
        print(f"run {run:3}: kill {kill_after * 1000:5.0f} ms after queueing: lost {lost}, duplicated {duplicated}{mark}", flush=True)
    print(
        f"\n{args.runs} runs, {args.runs * 3} notifications expected: lost {total_lost}, "
        f"duplicated {total_duplicated}, runs that did not set up {failed_setups}"
    )
    sys.exit(1 if total_lost or total_duplicated or failed_setups else 0)


if __name__ == "__main__":
    main()
