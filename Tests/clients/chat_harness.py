"""What the crash and cluster drivers share: `parley serve` and redis-server processes, and
the careful chat client (`Sender`).

A Sender is one socket of one user in one channel, sending m0, m1, … with client_msg_ids, one
at a time, as a careful client does: a message not acknowledged is sent again (the same
client_msg_id) after reconnecting; a socket that loses its node reconnects (to the next node
of its list) and rejoins with the last seq it holds. It records every seq received and every
acknowledgement, and reports duplicates and changed acknowledgements as problems.
"""
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websockets

problems = []
stats = {"acks": 0, "resends": 0, "reconnects": 0, "error_replies": 0, "phx_errors": 0, "faults": 0}


def problem(text):
    if len(problems) < 50:
        problems.append(text)


class Node:
    """A `parley serve` process with the PARLEY_* settings of `env` (its port among them)."""

    def __init__(self, parley, env, log="/dev/null", name=None):
        self.parley, self.env, self.process = parley, env, None
        self.port = int(env["PARLEY_HTTP_PORT"])
        self.name = name or env.get("PARLEY_NODE_NAME", "node")
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")

    def start(self, ready=True):
        self.process = subprocess.Popen([self.parley, "serve"], stdout=self.log, stderr=self.log, env=self.env)
        if ready:
            self.wait_ready()

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"node {self.name} exited at start with {self.process.returncode}")
            if self.ready():
                return
            time.sleep(0.1)
        raise SystemExit(f"node {self.name} did not become ready")

    def ready(self):
        try:
            with urllib.request.urlopen(self.base + "/readyz", timeout=1) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @property
    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def signal(self, number):
        self.process.send_signal(number)

    def pause(self, seconds):
        self.process.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.process.send_signal(signal.SIGCONT)

    def metrics(self):
        """The node's metrics as {name: value} (labels dropped), or {} when it does not answer."""
        try:
            with urllib.request.urlopen(self.base + "/metrics", timeout=2) as answer:
                lines = answer.read().decode().splitlines()
        except (urllib.error.URLError, OSError):
            return {}
        values = {}
        for line in lines:
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name.split("{")[0]] = float(value)
        return values

    def recovered(self, deadline):
        """Waits until the node has recovered every channel's log (its metric says 0 pending)."""
        while time.monotonic() < deadline:
            if self.metrics().get("parley_recovery_pending_channels") == 0:
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        if not self.alive:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
            print(f"node {self.name} exited with {code}", file=sys.stderr)
        except subprocess.TimeoutExpired:
            problem(f"node {self.name} did not stop within 60 s of SIGTERM")
            self.process.kill()


class Redis:
    """A redis-server of the driver's own: append-only, appendfsync always."""

    def __init__(self, port, folder):
        self.port, self.folder, self.process = port, folder, None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.folder, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise SystemExit("redis did not start")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


class Sender:
    """One socket of one user in one channel; `ports()` gives the nodes to try, in order."""

    def __init__(self, user, channel, name, ports):
        self.user, self.channel, self.name, self.ports = user, channel, name, ports
        self.topic = f"channel:{channel}"
        self.received = {}          # seq -> times received
        self.contiguous = 0         # every seq up to here received
        self.acked = {}             # cmid -> seq
        self.latencies = []         # (sent at, seconds to the ack)
        self.next = 0
        self.pending = None         # the cmid waiting for its ack
        self.pending_since = None   # when it was first sent
        self.ref = 0
        self.sending = True
        self.joined_once = False
        self.attempt = 0
        self.connected_to = None
        self.expect = None          # in a session: the last seq delivered (the next must follow it)
        self.session_ended = None   # when the last session ended (for the time to rejoin)

    def on_message(self, seq):
        if self.expect is not None:
            if seq != self.expect + 1:
                problem(f"{self.name}: seq {seq} arrived after {self.expect} (out of order or a gap)")
            self.expect = seq
        self.received[seq] = self.received.get(seq, 0) + 1
        if self.received[seq] > 1:
            problem(f"{self.name}: seq {seq} received {self.received[seq]} times")
        while self.received.get(self.contiguous + 1):
            self.contiguous += 1

    def port(self):
        candidates = self.ports()
        return candidates[self.attempt % len(candidates)]

    async def session(self, stop_at, target=0):
        """Connects, joins with the last seq held, sends until the socket breaks or `stop_at`;
        then waits (up to 5 s) until every seq through `target` has arrived."""
        port = self.port()
        url = f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&token={self.user['token']}"
        async with websockets.connect(url, open_timeout=3, close_timeout=1, ping_interval=None, max_size=None) as ws:
            self.connected_to = port
            replies = {}
            errored = asyncio.Event()

            async def reader():
                async for text in ws:
                    join_ref, ref, topic, event, payload = json.loads(text)
                    if event == "message_created" and topic == self.topic:
                        self.on_message(payload["seq"])
                    elif event == "phx_reply" and ref is not None:
                        replies.setdefault(ref, asyncio.get_running_loop().create_future())
                        if not replies[ref].done():
                            replies[ref].set_result(payload)
                    elif event in ("phx_error", "phx_close") and topic == self.topic:
                        stats["phx_errors"] += 1
                        errored.set()

            async def request(event, payload, timeout=12):
                self.ref += 1
                ref = str(self.ref)
                future = replies.setdefault(ref, asyncio.get_running_loop().create_future())
                await ws.send(json.dumps(["1", ref, self.topic, event, payload]))
                await asyncio.wait({future, reading}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not future.done():
                    raise asyncio.TimeoutError(f"no reply to {event}")
                return future.result()

            reading = asyncio.create_task(reader())
            try:
                self.expect = self.contiguous
                join = await request("phx_join", {"last_seq": self.contiguous})
                if join["status"] != "ok":
                    stats["error_replies"] += 1
                    await asyncio.sleep(0.2)
                    return
                self.joined_once = True
                if self.session_ended is not None:
                    rejoined = time.monotonic()
                    stats.setdefault("rejoins", []).append((rejoined, rejoined - self.session_ended))
                while time.monotonic() < stop_at or self.pending is not None:
                    if errored.is_set() or reading.done():
                        return
                    if self.pending is None:
                        if not self.sending:
                            return
                        self.pending = f"{self.name}-{self.next}"
                        self.pending_since = time.monotonic()
                        self.next += 1
                    answer = await request("new_message", {"body": f"body of {self.pending}", "client_msg_id": self.pending})
                    if answer["status"] == "ok":
                        seq = answer["response"]["seq"]
                        earlier = self.acked.get(self.pending)
                        if earlier is not None and earlier != seq:
                            problem(f"{self.pending} acknowledged as {earlier} and then as {seq}")
                        self.acked[self.pending] = seq
                        self.latencies.append((self.pending_since, time.monotonic() - self.pending_since))
                        stats["acks"] += 1
                        self.pending = None
                        await asyncio.sleep(random.uniform(0.08, 0.16))
                    else:
                        stats["error_replies"] += 1
                        stats["resends"] += 1
                        stats.setdefault("error_reasons", {})
                        reason = answer.get("response", {}).get("reason", "?")
                        stats["error_reasons"][reason] = stats["error_reasons"].get(reason, 0) + 1
                        await asyncio.sleep(0.2)
                waited = time.monotonic() + 5
                while self.contiguous < target and time.monotonic() < waited and not errored.is_set() and not reading.done():
                    await asyncio.sleep(0.05)
            finally:
                reading.cancel()
                self.expect = None
                self.session_ended = time.monotonic()

    async def run(self, stop_at):
        while True:
            try:
                await self.session(stop_at)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                stats["reconnects"] += 1
                self.attempt += 1
                if self.pending is not None:
                    stats["resends"] += 1
                await asyncio.sleep(0.2)
            if (time.monotonic() >= stop_at or not self.sending) and self.pending is None:
                return

    async def catch_up(self, last_seq, deadline):
        """Rejoins until every seq through `last_seq` has arrived."""
        while self.contiguous < last_seq and time.monotonic() < deadline:
            try:
                await self.session(0, target=last_seq)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                self.attempt += 1
            await asyncio.sleep(0.2)
        if self.contiguous < last_seq:
            problem(f"{self.name}: holds seqs only through {self.contiguous} of {last_seq}")


async def finish(senders, deadline_seconds=60):
    """Stops sending, resends what is pending until acknowledged (the senders' run tasks do),
    then catches every socket up to its channel's last acknowledged seq. Returns
    {channel: {cmid: seq}} and records what a socket never received."""
    for sender in senders:
        sender.sending = False
    last = {}
    for sender in senders:
        last[sender.channel] = max([last.get(sender.channel, 0)] + list(sender.acked.values()))
    deadline = time.monotonic() + deadline_seconds
    await asyncio.gather(*(sender.catch_up(last[sender.channel], deadline) for sender in senders))
    channels = {}
    for sender in senders:
        channels.setdefault(sender.channel, {}).update(sender.acked)
        missing = [seq for seq in range(1, last[sender.channel] + 1) if seq not in sender.received]
        if missing:
            problem(f"{sender.name}: never received {missing[:10]}")
        if not sender.joined_once:
            problem(f"{sender.name}: never joined")
    return channels


def report(channels, extra=None):
    """Prints the one JSON report line and exits (1 when there are problems)."""
    stats.pop("rejoins", None)  # raw samples; a driver that wants them summarizes them first
    body = {"channels": channels, "problems": problems, "stats": stats}
    body.update(extra or {})
    print(json.dumps(body))
    sys.exit(1 if problems else 0)
