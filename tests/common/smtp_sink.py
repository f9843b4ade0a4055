"""A real SMTP server for the notification tests (aiosmtpd), with faults on request.

Usage: smtp_sink.py PORT OUTFILE [--fail-data N] [--reject ADDRESS]...
Each accepted message is appended to OUTFILE as one JSON line
{"from": ..., "to": [...], "data": ..., "at": unix seconds of acceptance}. --fail-data N answers the first N DATA commands
with 451; --reject ADDRESS answers RCPT TO for that address with 550.
"""
import argparse
import asyncio
import json
import signal
import threading
import time

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out, fail_data, rejected):
        self.out = out
        self.fail_data = fail_data
        self.rejected = set(rejected)
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rejected:
            return "550 5.1.1 No such user: " + address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.fail_data > 0:
                self.fail_data -= 1
                return "451 4.3.0 Try again later"
            record = {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "at": time.time(),
            }
            with open(self.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        return "250 2.0.0 Message accepted"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("out")
    parser.add_argument("--fail-data", type=int, default=0)
    parser.add_argument("--reject", action="append", default=[])
    args = parser.parse_args()
    handler = Handler(args.out, args.fail_data, args.reject)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
