"""Receivers of Parley's notifications, as an operator's systems would be: a webhook endpoint
(checks each request's HMAC-SHA256 signature with the standard library's `hmac`), an SMTP
server (aiosmtpd from PyPI), and a Web Push service holding one browser subscription of its
own: it decrypts each push with `http_ece` (PyPI, the library pywebpush uses) and the
subscription's private key, and verifies the VAPID token (ES256, with `cryptography`) and its
claims. Every delivery is recorded, duplicates included; `/push/gone` answers 410.

Standalone (for the Swift node tests):
  notify_sinks.py --ready FILE --log FILE [--secret S] [--fail-first N] [--delay-ms MS]
writes {"http": port, "smtp": port} to FILE once both listen, appends one JSON line per
delivery to the log, and runs until it is killed.
"""
import argparse
import base64
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

import http_ece
from aiosmtpd.controller import Controller
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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
        self.webhooks, self.mails, self.pushes = [], [], []
        self.http_port, self.smtp_port = free_port(), free_port()
        # The browser's side of a push subscription: its key pair and auth secret.
        self.push_key = ec.generate_private_key(ec.SECP256R1())
        self.push_auth = os.urandom(16)

    def record(self, kind, entry):
        entry["kind"] = kind
        entry["at"] = time.time()
        with self.lock:
            {"webhook": self.webhooks, "email": self.mails, "push": self.pushes}[kind].append(entry)
            if self.log:
                with open(self.log, "a") as out:
                    out.write(json.dumps(entry) + "\n")

    def start(self):
        sinks = self

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.startswith("/push/"):
                    status = 410 if self.path == "/push/gone" else sinks.receive_push(body, self.headers)
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
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

    @property
    def subscription(self):
        """The subscription as a browser's PushSubscription.toJSON() gives it."""
        point = self.push_key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"http://127.0.0.1:{self.http_port}/push/subscription-1",
                "keys": {"p256dh": b64url(point), "auth": b64url(self.push_auth)}}

    def receive_push(self, body, headers):
        """Decrypts a push (RFC 8291) and verifies its VAPID token (RFC 8292); records both."""
        entry = {"content_encoding": headers.get("Content-Encoding"), "ttl": headers.get("TTL"), "urgency": headers.get("Urgency")}
        try:
            entry["payload"] = json.loads(http_ece.decrypt(body, private_key=self.push_key, auth_secret=self.push_auth,
                                                           version="aes128gcm"))
        except Exception as error:  # recorded: the test says what failed
            entry["decrypt_error"] = repr(error)
        auth = headers.get("Authorization", "")
        try:
            fields = dict(part.strip().split("=", 1) for part in auth[len("vapid "):].split(","))
            token, key = fields["t"], fields["k"]
            head, claims, signature = token.split(".")
            raw = unb64url(signature)
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
            public.verify(utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                          f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
            header, claims = json.loads(unb64url(head)), json.loads(unb64url(claims))
            entry.update({"k": key, "claims": claims, "vapid_valid": auth.startswith("vapid ") and header.get("alg") == "ES256"
                          and claims.get("aud") == f"http://127.0.0.1:{self.http_port}"
                          and time.time() < claims.get("exp", 0) <= time.time() + 24 * 3600
                          and str(claims.get("sub", "")).startswith(("mailto:", "https:"))})
        except (InvalidSignature, KeyError, ValueError) as error:
            entry.update({"vapid_valid": False, "vapid_error": repr(error)})
        self.record("push", entry)
        return 201

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
        json.dump({"http": sinks.http_port, "smtp": sinks.smtp_port, "subscription": sinks.subscription}, out)
    os.replace(args.ready + ".tmp", args.ready)
    while True:
        time.sleep(3600)
