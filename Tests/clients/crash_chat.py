"""Crashes a real Parley node (or its Redis) under load and checks what the clients saw.

usage: crash_chat.py --parley BIN --mode node|redis|pause [--kills 3] [--channels 6] [--senders 2]

Runs `parley serve` (its settings from the PARLEY_* environment this script is given), signs
users up, puts them in channels, and keeps every socket sending with a client_msg_id, one
message at a time, as a careful client does: a message not acknowledged is sent again (the
same client_msg_id) after reconnecting; a socket that loses its node reconnects and rejoins
each channel with the last seq it holds. Meanwhile, `--kills` times:
  node:  kill -9 the node, start it again;
  redis: kill -9 Redis (append-only, appendfsync always; started here on --redis-port), start it again;
  pause: SIGSTOP the node for --pause-ms (longer than its lease TTL), then SIGCONT.
Then sending stops, every pending message is resent until acknowledged, every socket catches
up, and the node is stopped gracefully (it flushes). Checks, per socket: every seq of its
channel received exactly once (no gap, no duplicate); per message: every acknowledgement of a
client_msg_id carries the same seq. Prints one JSON line: {"channels": {id: {cmid: seq}},
"problems": [...], "stats": {...}}; exits 1 when there are problems.
"""
import argparse
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
import uuid

import websockets

from parley_http import API

parser = argparse.ArgumentParser()
parser.add_argument("--parley", required=True)
parser.add_argument("--mode", choices=["node", "redis", "pause"], required=True)
parser.add_argument("--kills", type=int, default=3)
parser.add_argument("--channels", type=int, default=6)
parser.add_argument("--senders", type=int, default=2)
parser.add_argument("--interval", type=float, default=2.5, help="seconds of sending between faults")
parser.add_argument("--pause-ms", type=int, default=3500)
parser.add_argument("--redis-port", type=int)
parser.add_argument("--redis-dir")
parser.add_argument("--log", default="/dev/null", help="where the node's output goes")
args = parser.parse_args()

PORT = int(os.environ["PARLEY_HTTP_PORT"])
BASE = f"http://127.0.0.1:{PORT}"
problems = []
stats = {"acks": 0, "resends": 0, "reconnects": 0, "error_replies": 0, "phx_errors": 0, "faults": 0}


def problem(text):
    if len(problems) < 50:
        problems.append(text)


# --- processes -----------------------------------------------------------------------------

class Node:
    def __init__(self):
        self.process = None
        self.log = open(args.log, "ab")

    def start(self):
        self.process = subprocess.Popen([args.parley, "serve"], stdout=self.log, stderr=self.log, env=os.environ.copy())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the node exited at start with {self.process.returncode} (see {args.log})")
            try:
                with urllib.request.urlopen(BASE + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise SystemExit("the node did not become ready")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def pause(self, seconds):
        self.process.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.process.send_signal(signal.SIGCONT)

    def recovered(self, deadline):
        """Waits until the node has recovered every channel's log (its metric says 0 pending)."""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(BASE + "/metrics", timeout=2) as answer:
                    lines = answer.read().decode().splitlines()
                pending = [line for line in lines if line.startswith("parley_recovery_pending_channels")]
                if pending and float(pending[0].split()[-1]) == 0:
                    return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        return False

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
            print(f"node exited with {code}", file=sys.stderr)
        except subprocess.TimeoutExpired:
            problem("the node did not stop within 60 s of SIGTERM")
            self.process.kill()


class Redis:
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


# --- HTTP setup ----------------------------------------------------------------------------

api = API(PORT)
sign_up = api.sign_up


# --- clients -------------------------------------------------------------------------------

class Sender:
    """One socket of one user in one channel, sending m0, m1, … with client_msg_ids."""

    def __init__(self, user, channel, name):
        self.user, self.channel, self.name = user, channel, name
        self.topic = f"channel:{channel}"
        self.received = {}          # seq -> times received
        self.contiguous = 0         # every seq up to here received
        self.acked = {}             # cmid -> seq
        self.next = 0
        self.pending = None         # the cmid waiting for its ack
        self.ref = 0
        self.sending = True
        self.joined_once = False

    def on_message(self, seq):
        self.received[seq] = self.received.get(seq, 0) + 1
        if self.received[seq] > 1:
            problem(f"{self.name}: seq {seq} received {self.received[seq]} times")
        while self.received.get(self.contiguous + 1):
            self.contiguous += 1

    async def session(self, stop_at, target=0):
        """Connects, joins with the last seq held, sends until the socket breaks or `stop_at`;
        then waits (up to 5 s) until every seq through `target` has arrived."""
        url = f"ws://127.0.0.1:{PORT}/socket/websocket?vsn=2.0.0&token={self.user['token']}"
        async with websockets.connect(url, open_timeout=3, close_timeout=1, ping_interval=None, max_size=None) as ws:
            replies = {}
            joined = asyncio.Event()
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
                    elif event == "phx_error" and topic == self.topic:
                        stats["phx_errors"] += 1
                        errored.set()

            async def request(event, payload, timeout=5):
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
                join = await request("phx_join", {"last_seq": self.contiguous})
                if join["status"] != "ok":
                    stats["error_replies"] += 1
                    await asyncio.sleep(0.2)
                    return
                self.joined_once = True
                while time.monotonic() < stop_at or self.pending is not None:
                    if errored.is_set() or reading.done():
                        return
                    if self.pending is None:
                        if not self.sending:
                            return
                        self.pending = f"{self.name}-{self.next}"
                        self.next += 1
                    answer = await request("new_message", {"body": f"body of {self.pending}", "client_msg_id": self.pending})
                    if answer["status"] == "ok":
                        seq = answer["response"]["seq"]
                        earlier = self.acked.get(self.pending)
                        if earlier is not None and earlier != seq:
                            problem(f"{self.pending} acknowledged as {earlier} and then as {seq}")
                        self.acked[self.pending] = seq
                        stats["acks"] += 1
                        self.pending = None
                        await asyncio.sleep(random.uniform(0.08, 0.16))
                    else:
                        stats["error_replies"] += 1
                        stats["resends"] += 1
                        await asyncio.sleep(0.2)
                waited = time.monotonic() + 5
                while self.contiguous < target and time.monotonic() < waited and not errored.is_set() and not reading.done():
                    await asyncio.sleep(0.05)
            finally:
                reading.cancel()

    async def run(self, stop_at):
        while True:
            try:
                await self.session(stop_at)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                stats["reconnects"] += 1
                if self.pending is not None:
                    stats["resends"] += 1
                await asyncio.sleep(0.2)
            if time.monotonic() >= stop_at and self.pending is None:
                return

    async def catch_up(self, last_seq, deadline):
        """Rejoins until every seq through `last_seq` has arrived."""
        while self.contiguous < last_seq and time.monotonic() < deadline:
            try:
                await self.session(0, target=last_seq)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                pass
            await asyncio.sleep(0.2)
        if self.contiguous < last_seq:
            problem(f"{self.name}: holds seqs only through {self.contiguous} of {last_seq}")


async def main():
    node = Node()
    redis = None
    if args.mode == "redis":
        redis = Redis(args.redis_port, args.redis_dir)
        redis.start()
    node.start()
    owner = sign_up("owner")
    workspace = api("POST", "/api/workspaces", owner["token"], {"name": f"crash {uuid.uuid4().hex[:6]}"})["workspace"]["id"]
    users = [sign_up(f"user{i}") for i in range(args.senders)]
    for user in users:
        api("POST", f"/api/workspaces/{workspace}/members", owner["token"], {"email": user["email"]})
    senders = []
    for c in range(args.channels):
        channel = api("POST", f"/api/workspaces/{workspace}/channels", owner["token"], {"name": f"ch{c}"})["channel"]["id"]
        for i, user in enumerate(users):
            api("POST", f"/api/channels/{channel}/join", user["token"])
            senders.append(Sender(user, channel, f"c{c}u{i}"))

    duration = args.interval * (args.kills + 1)
    stop_at = time.monotonic() + duration
    running = [asyncio.create_task(sender.run(stop_at)) for sender in senders]

    for _ in range(args.kills):
        await asyncio.sleep(args.interval)
        stats["faults"] += 1
        if args.mode == "node":
            node.kill()
            await asyncio.sleep(0.3)
            await asyncio.to_thread(node.start)
        elif args.mode == "redis":
            redis.kill()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(redis.start)
        else:
            await asyncio.to_thread(node.pause, args.pause_ms / 1000)

    await asyncio.wait_for(asyncio.gather(*running), 120)
    for sender in senders:
        sender.sending = False
    # Everything acknowledged; each socket now catches up to its channel's last seq.
    last = {}
    for sender in senders:
        last[sender.channel] = max([last.get(sender.channel, 0)] + list(sender.acked.values()))
    deadline = time.monotonic() + 60
    await asyncio.gather(*(sender.catch_up(last[sender.channel], deadline) for sender in senders))
    # Channels nobody touched since the last fault are recovered by the node's own sweep.
    await asyncio.sleep(0.5)
    if not await asyncio.to_thread(node.recovered, time.monotonic() + 30):
        problem("the node still reports channels to recover after 30 s")
    node.stop()
    if redis:
        redis.kill()

    channels = {}
    for sender in senders:
        channels.setdefault(sender.channel, {}).update(sender.acked)
        missing = [seq for seq in range(1, last[sender.channel] + 1) if seq not in sender.received]
        if missing:
            problem(f"{sender.name}: never received {missing[:10]}")
        if not sender.joined_once:
            problem(f"{sender.name}: never joined")
    print(json.dumps({"channels": channels, "problems": problems, "stats": stats}))
    sys.exit(1 if problems else 0)


asyncio.run(main())
