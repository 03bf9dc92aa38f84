"""The chaos suite's driver: chat load through HAProxy on a cluster that `cluster/up` started,
while faults are injected on a seeded random schedule through the cluster scripts; then the
accounting. `cluster/chaos` starts the cluster (its own Redis, PostgreSQL and ports) and runs
this; see its header for the faults.

usage: chaos.py --cluster-dir D --port P --services-dir S --database-url URL --redis-port R
                [--scenario chaos|rolling] [--duration 60] [--seed N] [--channels 8] [--users 4]

Clients: every user has a socket in every channel (the careful client of chat_harness: sends
with client_msg_ids one at a time, reconnects through HAProxy, rejoins with its last seq,
resends what was not acknowledged) and one socket on the workspace topic (presence); two
more users talk through phxsocket, a Phoenix client from PyPI, unmodified, wrapped in the same
reconnect-and-resend discipline. Prints a table and one JSON line; exits 1 on any message
lost, duplicated, seq gap, message a member never received, stale presence entry, or (rolling)
failed request.
"""
import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import websockets
from phxsocket import Client

from chat_harness import Sender, finish, problem, problems, stats
from parley_http import API

parser = argparse.ArgumentParser()
parser.add_argument("--cluster-dir", required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--services-dir", required=True)
parser.add_argument("--database-url", required=True)
parser.add_argument("--redis-port", type=int, required=True)
parser.add_argument("--redis-prefix", default="parley")
parser.add_argument("--scenario", choices=["chaos", "rolling", "drain"], default="chaos")
parser.add_argument("--duration", type=float, default=60)
parser.add_argument("--seed", type=int)
parser.add_argument("--channels", type=int, default=8)
parser.add_argument("--users", type=int, default=4)
parser.add_argument("--nodes", type=int, default=3)
parser.add_argument("--lease-ttl", type=float, default=2.0)
args = parser.parse_args()

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
schedule_random = random.Random(seed)
random.seed(seed)
started = time.monotonic()
events = []        # (seconds since start, what happened)
measured = {}


def log(text):
    at = time.monotonic() - started
    events.append((round(at, 1), text))
    print(f"[{at:6.1f}s] {text}", file=sys.stderr, flush=True)


def script(*argv, check=True, timeout=120):
    """Runs a cluster/ script against the cluster under test."""
    result = subprocess.run([os.path.join(ROOT, "cluster", argv[0]), *argv[1:]], capture_output=True, text=True,
                            timeout=timeout, env=os.environ)
    if check and result.returncode != 0:
        problem(f"cluster/{' '.join(argv)} failed: {result.stderr.strip()[-300:]}")
    return result


def node_port(index):
    return args.port + index


def node_get(index, path, timeout=1):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node_port(index)}{path}", timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None, ""


def metric(index, name):
    status, text = node_get(index, "/metrics", timeout=2)
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rpartition(" ")[2])
    return None


def running_nodes():
    out = script("status", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("node-") and line.split()[2] == "running"]


def haproxy(command):
    import socket as sockets
    with sockets.socket(sockets.AF_UNIX) as unix:
        unix.connect(os.path.join(args.cluster_dir, "haproxy.sock"))
        unix.sendall(command.encode() + b"\n")
        out = b""
        while chunk := unix.recv(65536):
            out += chunk
    return out.decode().strip()


def redis_cli(*argv):
    return subprocess.run(["redis-cli", "-p", str(args.redis_port), *argv], capture_output=True, text=True).stdout.strip()


# MARK: faults

def pick_node():
    return schedule_random.choice(sorted(running_nodes()))


def break_then_start(action, node, broken, seconds, mended):
    """cluster/ACTION NODE, `seconds` later cluster/start NODE (a restart, or SIGCONT)."""
    script(action, node)
    log(broken)
    time.sleep(seconds)
    script("start", node)
    log(mended)


def fault_kill():
    node = pick_node()
    break_then_start("kill", node, f"kill -9 {node}", schedule_random.uniform(2, 4), f"{node} restarted and ready")


def fault_pause():
    node, frozen = pick_node(), args.lease_ttl + 1.5
    break_then_start("stop", node, f"SIGSTOP {node}", frozen, f"SIGCONT {node} (frozen {frozen:.1f} s, past the lease TTL)")


def fault_drain():
    node = pick_node()
    log(f"SIGTERM {node} (drain) and restart")
    script("restart", node)
    log(f"{node} drained and back")


def fault_redis():
    pid = open(os.path.join(args.services_dir, "redis", "redis.pid")).read().strip()
    os.kill(int(pid), signal.SIGKILL)
    log("kill -9 redis")
    time.sleep(1)
    subprocess.run([os.path.join(ROOT, "cluster", "services"), "start", "redis"], capture_output=True, timeout=60)
    log("redis restarted")


def fault_postgres():
    services = os.path.join(ROOT, "cluster", "services")
    subprocess.run([services, "stop", "postgres"], capture_output=True, timeout=60)
    log("postgres stopped")
    time.sleep(2)
    subprocess.run([services, "start", "postgres"], capture_output=True, timeout=60)
    log("postgres restarted")


def fault_add_remove():
    spare = f"node-{args.nodes + 1}"
    script("start", spare)
    log(f"{spare} added")
    time.sleep(schedule_random.uniform(3, 5))
    script("drain", spare)
    log(f"{spare} removed (drained)")


def fault_partition():
    # The node that owns the most channels: cut off, it must stop acknowledging their writes.
    owned = {name: metric(int(name.split("-")[1]), "parley_owned_channels") or 0 for name in running_nodes()}
    node = max(sorted(owned), key=lambda name: owned[name])
    index = int(node.split("-")[1])
    relay = f"redis-relay-{index}/redis"
    before = metric(index, "parley_messages_accepted_total")
    haproxy(f"disable server {relay}")
    haproxy(f"shutdown sessions server {relay}")
    cut = time.monotonic()
    log(f"partition: {node} cut off from Redis")
    held = args.lease_ttl + 3
    ready_failed_after = None
    accepted_late = None
    while time.monotonic() - cut < held:
        status, _ = node_get(index, "/readyz")
        if status == 503 and ready_failed_after is None:
            ready_failed_after = time.monotonic() - cut
        if accepted_late is None and time.monotonic() - cut > args.lease_ttl * 0.8:
            accepted_late = metric(index, "parley_messages_accepted_total")
        time.sleep(0.1)
    accepted_end = metric(index, "parley_messages_accepted_total")
    haproxy(f"enable server {relay}")
    log(f"partition healed after {held:.1f} s; /readyz failed after {ready_failed_after and round(ready_failed_after, 2)} s")
    measured.setdefault("partitions", []).append({
        "node": node, "owned_channels": owned[node], "seconds": held,
        "readyz_failed_after_s": ready_failed_after and round(ready_failed_after, 3),
        "accepted_before_cut": before, "accepted_at_80pct_ttl": accepted_late, "accepted_at_heal": accepted_end})
    if ready_failed_after is None:
        problem(f"partitioned {node} never failed /readyz")
    if accepted_late is not None and accepted_end is not None and accepted_end != accepted_late:
        problem(f"partitioned {node} acknowledged {accepted_end - accepted_late} messages after 80 % of the lease TTL")


FAULTS = {"kill": fault_kill, "pause": fault_pause, "drain": fault_drain, "redis": fault_redis,
          "postgres": fault_postgres, "add-remove": fault_add_remove, "partition": fault_partition}


def chaos_schedule(stop_at):
    """Every fault once in a seeded order, then seeded picks, until the time is up."""
    order = list(FAULTS)
    schedule_random.shuffle(order)
    while time.monotonic() < stop_at:
        name = order.pop(0) if order else schedule_random.choice(list(FAULTS))
        time.sleep(schedule_random.uniform(1, 3))
        if time.monotonic() >= stop_at:
            break
        stats["faults"] += 1
        measured.setdefault("faults", []).append(name)
        try:
            FAULTS[name]()
        except Exception as error:  # a fault that could not be injected is a problem of the run
            problem(f"fault {name}: {error!r}")
        # Let the cluster settle: every node that should run is ready.
        settle = time.monotonic() + 30
        while time.monotonic() < settle and not all(node_get(int(n.split("-")[1]), "/readyz")[0] == 200 for n in running_nodes()):
            time.sleep(0.2)


# MARK: clients

class PhxSender:
    """A user talking through phxsocket (PyPI, unmodified): one socket, one channel, sends
    with client_msg_ids one at a time; a closed socket is replaced by a new Client that joins
    with the last seq held, and what was not acknowledged is sent again."""

    def __init__(self, user, channel, name):
        self.user, self.channel, self.name = user, channel, name
        self.topic = f"channel:{channel}"
        self.received = {}
        self.contiguous = 0
        self.acked = {}
        self.latencies = []
        self.joined_once = False
        self.sending = True
        self.lock = threading.Lock()

    def on_created(self, payload):
        with self.lock:
            seq = payload["seq"]
            self.received[seq] = self.received.get(seq, 0) + 1
            if self.received[seq] > 1:
                problem(f"{self.name} (phxsocket): seq {seq} received twice")
            while self.received.get(self.contiguous + 1):
                self.contiguous += 1

    def join(self, client, closed):
        """Connects `client` (a new phxsocket Client) and joins with the last seq held."""
        client.on_close = lambda _client: closed.set()
        client.connect()
        channel = client.channel(self.topic, {"last_seq": self.contiguous})
        channel.on("message_created", self.on_created)
        joined = client.push(self.topic, "phx_join", {"last_seq": self.contiguous}, reply=True)
        if not joined.event.wait(10) or joined.message.get("status") != "ok":
            raise TimeoutError("join")
        self.joined_once = True
        return channel

    def session(self, body, fallback_pause=0.3):
        """One socket: a new Client, joined, handed to `body(channel, closed)`; closed after."""
        closed = threading.Event()
        client = Client(f"ws://127.0.0.1:{args.port}/socket/websocket", {"token": self.user["token"]})
        try:
            body(self.join(client, closed), closed)
        except Exception:
            stats["reconnects"] += 1
            time.sleep(fallback_pause)
        finally:
            try:
                client.close()
            except Exception:
                pass

    def run(self, stop_at):
        state = {"counter": 0, "pending": None, "since": None}

        def send(channel, closed):
            while not closed.is_set() and (time.monotonic() < stop_at or state["pending"] is not None):
                if state["pending"] is None:
                    if not self.sending:
                        return
                    state.update(pending=f"{self.name}-{state['counter']}", since=time.monotonic(), counter=state["counter"] + 1)
                pending = state["pending"]
                sent = channel.push("new_message", {"body": f"phx {pending}", "client_msg_id": pending}, reply=True)
                if not sent.event.wait(12):
                    raise TimeoutError("no reply")
                if sent.message.get("status") == "ok":
                    seq = sent.message["response"]["seq"]
                    if pending in self.acked and self.acked[pending] != seq:
                        problem(f"{pending} acknowledged as {self.acked[pending]} and then as {seq}")
                    self.acked[pending] = seq
                    self.latencies.append((state["since"], time.monotonic() - state["since"]))
                    stats["acks"] += 1
                    state["pending"] = None
                    time.sleep(random.uniform(0.15, 0.3))
                else:
                    stats["error_replies"] += 1
                    reason = sent.message.get("response", {}).get("reason", "?")
                    stats.setdefault("error_reasons", {})
                    stats["error_reasons"][reason] = stats["error_reasons"].get(reason, 0) + 1
                    time.sleep(0.2)

        while (time.monotonic() < stop_at and self.sending) or state["pending"] is not None:
            self.session(send)
        self.sending = False

    def catch_up(self, last_seq, deadline):
        def wait(_channel, closed):
            until = time.monotonic() + 5
            while self.contiguous < last_seq and time.monotonic() < until and not closed.is_set():
                time.sleep(0.05)

        while self.contiguous < last_seq and time.monotonic() < deadline:
            self.session(wait)


class Watcher:
    """A user's socket on the workspace topic: presence. Reconnects until stopped."""

    def __init__(self, user, workspace):
        self.user, self.workspace = user, workspace
        self.stopping = False

    async def run(self):
        url = f"ws://127.0.0.1:{args.port}/socket/websocket?vsn=2.0.0&token={self.user['token']}"
        while not self.stopping:
            try:
                async with websockets.connect(url, open_timeout=3, close_timeout=1, ping_interval=None) as ws:
                    await ws.send(json.dumps(["1", "1", f"workspace:{self.workspace}", "phx_join", {}]))
                    beat = 0
                    while not self.stopping:
                        try:
                            await asyncio.wait_for(ws.recv(), timeout=1)
                        except asyncio.TimeoutError:
                            beat += 1
                            if beat % 20 == 0:
                                await ws.send(json.dumps([None, str(beat), "phoenix", "heartbeat", {}]))
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                await asyncio.sleep(0.3)


def setup():
    api = API(args.port)
    owner = api.sign_up("owner")
    workspace = api("POST", "/api/workspaces", owner["token"], {"name": f"chaos {uuid.uuid4().hex[:6]}"})["workspace"]["id"]
    users = [api.sign_up(f"user{i}") for i in range(args.users)]
    phx_users = [api.sign_up(f"phx{i}") for i in range(2)]
    for user in users + phx_users:
        api("POST", f"/api/workspaces/{workspace}/members", owner["token"], {"email": user["email"]})
    senders, phx, channels = [], [], []
    for c in range(args.channels):
        channel = api("POST", f"/api/workspaces/{workspace}/channels", owner["token"], {"name": f"ch{c}"})["channel"]["id"]
        channels.append(channel)
        for i, user in enumerate(users):
            api("POST", f"/api/channels/{channel}/join", user["token"])
            senders.append(Sender(user, channel, f"c{c}u{i}", lambda: [args.port]))
    for i, user in enumerate(phx_users):
        api("POST", f"/api/channels/{channels[i]}/join", user["token"])
        phx.append(PhxSender(user, channels[i], f"phx{i}"))
    return workspace, users + phx_users, channels, senders, phx


async def drain_scenario(channel, user):
    """SIGTERM to node-1 with 20 sockets of its own joined to a channel: /readyz fails at once,
    every socket is closed with 1012 spread over the drain window, the node hands its
    channels off and exits well before its deadline; the load through HAProxy fails nothing."""
    window = float(os.environ.get("PARLEY_DRAIN_WINDOW_MS", "10000")) / 1000
    url = f"ws://127.0.0.1:{node_port(1)}/socket/websocket?vsn=2.0.0&token={user['token']}"
    sockets = []
    for _ in range(20):
        ws = await websockets.connect(url, open_timeout=5, ping_interval=None)
        await ws.send(json.dumps(["1", "1", f"channel:{channel}", "phx_join", {}]))
        sockets.append(ws)
    closes = []

    async def watch(ws):
        try:
            async for _ in ws:
                pass
        except websockets.WebSocketException:
            pass
        closes.append((time.monotonic(), ws.close_code, ws.close_reason))

    watching = [asyncio.create_task(watch(ws)) for ws in sockets]
    owned_before = metric(1, "parley_owned_channels")
    pid = int(open(os.path.join(args.cluster_dir, "node-1.pid")).read())
    os.kill(pid, signal.SIGTERM)
    term = time.monotonic()
    log(f"SIGTERM node-1 (it owned {owned_before} channels, holds 20 sockets of the test and its share of the load)")
    not_ready_after = None
    while time.monotonic() - term < 5 and not_ready_after is None:
        if node_get(1, "/readyz")[0] == 503:
            not_ready_after = time.monotonic() - term
        await asyncio.sleep(0.02)
    exited_after = None
    while time.monotonic() - term < 40:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            exited_after = time.monotonic() - term
            break
        await asyncio.sleep(0.05)
    await asyncio.wait(watching, timeout=5)
    codes = sorted({code for _, code, _ in closes})
    spread = (max(t for t, _, _ in closes) - min(t for t, _, _ in closes)) if closes else 0
    measured["drain"] = {"readyz_503_after_s": not_ready_after and round(not_ready_after, 3), "exited_after_s": exited_after and round(exited_after, 2),
                         "window_s": window, "sockets_closed": len(closes), "close_codes": codes,
                         "close_spread_s": round(spread, 2), "owned_before": owned_before}
    log(f"node-1 drained: {measured['drain']}")
    if not_ready_after is None or not_ready_after > 0.5:
        problem(f"/readyz did not fail at once on SIGTERM: {not_ready_after}")
    if len(closes) != 20 or codes != [1012]:
        problem(f"the test's sockets were not all closed with 1012: {len(closes)} closed, codes {codes}")
    if spread < window * 0.4:
        problem(f"the sockets closed within {spread:.2f} s, not spread over the {window} s window")
    if exited_after is None or exited_after > window + 10:
        problem(f"node-1 exited after {exited_after} s (window {window} s)")
    script("start", "node-1")
    log("node-1 started again")
    await asyncio.sleep(2)


# MARK: accounting

def stored_messages(channels):
    psql = shutil.which("psql") or sorted(__import__("glob").glob("/usr/lib/postgresql/*/bin/psql"))[-1]
    query = ("SELECT channel_id, seq, coalesce(client_msg_id, '') FROM messages WHERE channel_id IN ("
             + ",".join(f"'{c}'" for c in channels) + ") ORDER BY channel_id, seq")
    deadline = time.monotonic() + 30
    while True:
        result = subprocess.run([psql, args.database_url, "-At", "-F", "|", "-c", query], capture_output=True, text=True)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    rows = {}
    for line in result.stdout.splitlines():
        channel, seq, cmid = line.split("|")
        rows.setdefault(channel, []).append((int(seq), cmid))
    return rows


def longest_unavailability(acks_by_channel, load_from, load_until):
    """Per channel, the longest stretch without an acknowledgement while the load ran."""
    worst = {}
    for channel, times in acks_by_channel.items():
        points = sorted([load_from] + [t for t in times if load_from <= t <= load_until] + [load_until])
        worst[channel] = max(b - a for a, b in zip(points, points[1:]))
    return worst


async def main():
    workspace, users, channels, senders, phx = setup()
    log(f"seed {seed}; {len(senders)} sockets in {len(channels)} channels + 2 phxsocket clients + {len(users)} presence sockets, "
        f"through HAProxy on :{args.port}")
    watchers = [Watcher(user, workspace) for user in users]
    watching = [asyncio.create_task(watcher.run()) for watcher in watchers]
    load_from = time.monotonic()
    stop_at = load_from + args.duration + (0 if args.scenario == "chaos" else 3600)
    running = [asyncio.create_task(sender.run(stop_at)) for sender in senders]
    phx_threads = [threading.Thread(target=p.run, args=(stop_at,), daemon=True) for p in phx]
    for thread in phx_threads:
        thread.start()
    await asyncio.sleep(3)
    if args.scenario == "chaos":
        await asyncio.to_thread(chaos_schedule, stop_at)
    elif args.scenario == "drain":
        await drain_scenario(channels[0], users[0])
        stop_at = time.monotonic()
        for sender in senders:
            sender.sending = False
        for p in phx:
            p.sending = False
    else:
        log("rolling restart begins")
        began = time.monotonic()
        result = await asyncio.to_thread(script, "restart", "--rolling", timeout=600)
        measured["rolling_restart_seconds"] = round(time.monotonic() - began, 1)
        log(f"rolling restart done in {measured['rolling_restart_seconds']} s")
        await asyncio.sleep(3)
        stop_at = time.monotonic()
        for sender in senders:
            sender.sending = False
        for p in phx:
            p.sending = False
    load_until = time.monotonic()
    await asyncio.gather(*running)
    for thread in phx_threads:
        thread.join(timeout=60)
    log("load stopped; catching every socket up")
    acknowledged = await finish(senders)
    last = {c: max([0] + list(acknowledged.get(c, {}).values())) for c in channels}
    for p in phx:
        acknowledged.setdefault(p.channel, {}).update(p.acked)
        last[p.channel] = max([last[p.channel]] + list(p.acked.values()))
    deadline = time.monotonic() + 60
    for p in phx:
        await asyncio.to_thread(p.catch_up, last[p.channel], deadline)
    never = 0
    for sender in senders:
        never += len([s for s in range(1, last[sender.channel] + 1) if s not in sender.received])
    for p in phx:
        missing = [s for s in range(1, last[p.channel] + 1) if s not in p.received]
        never += len(missing)
        if missing:
            problem(f"{p.name} (phxsocket): never received {missing[:10]}")
    for watcher in watchers:
        watcher.stopping = True
    await asyncio.gather(*watching)

    # PostgreSQL against what was acknowledged. The last messages reach it with their batch
    # (up to the batch timeout after their acknowledgement), or with a recovery: wait for them.
    settle_from = time.monotonic()
    while True:
        stored = stored_messages(channels)
        stored_ids = {(channel, cmid) for channel, rows in stored.items() for _, cmid in rows}
        missing = sum(1 for channel, acks in acknowledged.items() for cmid in acks if (channel, cmid) not in stored_ids)
        if missing == 0 or time.monotonic() - settle_from > 45:
            break
        await asyncio.sleep(0.5)
    measured["stored_within_s"] = round(time.monotonic() - settle_from, 1)
    lost = duplicated = gaps = 0
    for channel in channels:
        rows = stored.get(channel, [])
        seqs = [seq for seq, _ in rows]
        gaps += len(set(range(1, (max(seqs) if seqs else 0) + 1)) - set(seqs))
        by_id = {}
        for seq, cmid in rows:
            by_id.setdefault(cmid, []).append(seq)
        duplicated += sum(len(v) - 1 for v in by_id.values())
        for cmid, seq in acknowledged.get(channel, {}).items():
            if by_id.get(cmid, [None])[0] != seq:
                lost += 1
                problem(f"{cmid} acknowledged as seq {seq} in {channel}, stored as {by_id.get(cmid)}")
    if gaps:
        problem(f"{gaps} seq gaps in PostgreSQL")
    if duplicated:
        problem(f"{duplicated} client_msg_ids stored twice")

    # Presence: every socket has closed, so after a heartbeat TTL no entry may be left.
    await asyncio.sleep(4)
    stale = 0
    presence_deadline = time.monotonic() + 10
    while True:
        stale = int(redis_cli("HLEN", f"{args.redis_prefix}:presence:workspace:{{{workspace}}}") or 0)
        if stale == 0 or time.monotonic() > presence_deadline:
            break
        await asyncio.sleep(0.5)
    if stale:
        problem(f"{stale} presence entries left after every socket closed: "
                f"{redis_cli('HGETALL', f'{args.redis_prefix}:presence:workspace:{{{workspace}}}')[:300]}")

    acks_by_channel = {}
    for sender in senders:
        acks_by_channel.setdefault(sender.channel, []).extend(sent + latency for sent, latency in sender.latencies)
    for p in phx:
        acks_by_channel.setdefault(p.channel, []).extend(sent + latency for sent, latency in p.latencies)
    unavailable = longest_unavailability(acks_by_channel, load_from + 3, load_until)
    latencies = sorted(l for s in senders for _, l in s.latencies)
    rejoins = stats.get("rejoins", [])
    per_second = {}
    for at, _ in rejoins:
        per_second[int(at)] = per_second.get(int(at), 0) + 1
    summary = {
        "seed": seed, "scenario": args.scenario, "duration_s": args.duration,
        "acknowledged": sum(len(v) for v in acknowledged.values()), "lost": lost, "duplicated": duplicated,
        "seq_gaps": gaps, "never_received": never, "stale_presence": stale,
        "longest_unavailability_s": round(max(unavailable.values()), 2) if unavailable else None,
        "longest_send_to_ack_s": round(latencies[-1], 2) if latencies else None,
        "send_to_ack_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        "error_replies": stats["error_replies"], "error_reasons": stats.get("error_reasons", {}),
        "reconnects": len(rejoins) + stats["reconnects"], "resends": stats["resends"],
        "rejoin_p50_s": round(sorted(r for _, r in rejoins)[len(rejoins) // 2], 2) if rejoins else None,
        "rejoin_max_s": round(max(r for _, r in rejoins), 2) if rejoins else None,
        "reconnect_burst_per_s": max(per_second.values()) if per_second else 0,
        "phxsocket_acknowledged": sum(len(p.acked) for p in phx),
    }
    summary.update(measured)
    if args.scenario in ("rolling", "drain") and stats["error_replies"]:
        problem(f"the {args.scenario} failed {stats['error_replies']} requests: {stats.get('error_reasons')}")
    if never:
        problem(f"{never} messages some member never received")
    print("", file=sys.stderr)
    print(f"{args.scenario}: seed {seed}" + (f", {args.duration:.0f} s" if args.scenario == "chaos" else ""), file=sys.stderr)
    for key in ("acknowledged", "lost", "duplicated", "seq_gaps", "never_received", "stale_presence",
                "longest_unavailability_s", "longest_send_to_ack_s", "send_to_ack_p50_ms", "error_replies", "reconnects",
                "resends", "rejoin_p50_s", "rejoin_max_s", "reconnect_burst_per_s", "phxsocket_acknowledged"):
        print(f"  {key:28} {summary[key]}", file=sys.stderr)
    for key in ("stored_within_s", "rolling_restart_seconds", "drain", "partitions"):
        if key in summary:
            print(f"  {key:28} {summary[key]}", file=sys.stderr)
    if "faults" in summary:
        print(f"  {'faults':28} {', '.join(summary['faults'])}", file=sys.stderr)
    for line in problems:
        print(f"  PROBLEM: {line}", file=sys.stderr)
    print(json.dumps({"summary": summary, "problems": problems, "events": events}))
    sys.exit(1 if problems else 0)


asyncio.run(main())
