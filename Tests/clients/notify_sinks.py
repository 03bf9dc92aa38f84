"""Receivers of Parley's notifications, as an operator's systems would be: a webhook endpoint
(checks each request's HMAC-SHA256 signature with the standard library's `hmac`) and an SMTP
server (aiosmtpd from PyPI). Every delivery is recorded, duplicates included.

Standalone (for the Swift node tests):
  notify_sinks.py --ready FILE --log FILE [--secret S] [--fail-first N] [--delay-ms MS]
writes {"http": port, "smtp": port} to FILE once both listen, appends one JSON line per
delivery to the log, and runs until it is killed.
"""
import argparse
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import os
import socket
import threading
import time

from aiosmtpd.controller import Controller


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sinks:
    """The webhook and SMTP receivers. `fail_first`: that many webhook requests are answered
    503 (the sender must retry); `delay`: seconds each webhook answer waits."""

    def __init__(self, secret=None, fail_first=0, delay=0.0, log=None):
        self.secret, self.fail_left, self.delay, self.log = secret, fail_first, delay, log
        self.lock = threading.Lock()
        self.webhooks, self.mails = [], []
        self.http_port, self.smtp_port = free_port(), free_port()

    def record(self, kind, entry):
        entry["kind"] = kind
        entry["at"] = time.time()
        with self.lock:
            (self.webhooks if kind == "webhook" else self.mails).append(entry)
            if self.log:
                with open(self.log, "a") as out:
                    out.write(json.dumps(entry) + "\n")

    def start(self):
        sinks = self

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stamp = self.headers.get("X-Parley-Timestamp", "")
                given = self.headers.get("X-Parley-Signature", "")
                valid = None
                if sinks.secret is not None:
                    expected = "v1=" + hmac.new(sinks.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                    valid = hmac.compare_digest(expected, given) and abs(time.time() - int(stamp or 0)) < 300
                with sinks.lock:
                    refuse = sinks.fail_left > 0
                    if refuse:
                        sinks.fail_left -= 1
                if sinks.delay:
                    time.sleep(sinks.delay)
                if not refuse:
                    sinks.record("webhook", {"key": self.headers.get("Idempotency-Key"), "signature_valid": valid,
                                             "body": json.loads(body or b"{}")})
                self.send_response(503 if refuse else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", self.http_port), Hook)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

        class Mail:
            async def handle_DATA(self, server, session, envelope):
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                sinks.record("email", {"key": message["Message-ID"], "from": envelope.mail_from, "to": envelope.rcpt_tos,
                                       "subject": str(message["Subject"]), "text": message.get_content()})
                return "250 OK"

        self.smtp = Controller(Mail(), hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()
        return self

    def stop(self):
        self.http.shutdown()
        self.smtp.stop()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}/hook"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--secret")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=0)
    args = parser.parse_args()
    sinks = Sinks(args.secret, args.fail_first, args.delay_ms / 1000, args.log).start()
    with open(args.ready + ".tmp", "w") as out:
        json.dump({"http": sinks.http_port, "smtp": sinks.smtp_port}, out)
    os.replace(args.ready + ".tmp", args.ready)
    while True:
        time.sleep(3600)
