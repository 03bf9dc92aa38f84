"""Runs a real Parley cluster (several `parley serve` processes on one Redis and one
PostgreSQL) under chat load and checks what the clients saw, through one scenario:

  chat      members of every channel on every node send and receive; then a member removed
            through one node stops receiving on another;
  kill      the node owning the most channels is killed (kill -9) mid-run: how long until its
            channels answer again (failover), and its clients reconnect to the others;
  join      a fourth node joins mid-run and takes its share of the channels by handoff: no
            request fails; how long writes to a moving channel waited;
  pause     the node owning the most channels is frozen (SIGSTOP) past its lease TTL, then
            resumed: it steps down (fencing), its clients' sends are answered by the new owners;
  redis     Redis (the driver's own, append-only, appendfsync always) is killed and restarted
            twice: nodes reconnect and resubscribe, clients recover by seq;
  presence  a user with sockets on two nodes stays online until the last closes; a killed
            node's user goes offline (measured);
  names     a second process with a live node's name refuses to start.

usage: cluster_chat.py --parley BIN --scenario NAME [--nodes 3] [--redis-port P --redis-dir D]

Node settings come from the PARLEY_* environment (Redis URL, prefix, database, secret); the
driver gives node i the name n{i} and a free port. Clients send with
client_msg_ids, one at a time, resend what was not acknowledged after reconnecting (to their
home node, else the next live one) and rejoin with the last seq they hold. Checks: every socket
received every seq of its channel exactly once and in order; every acknowledgement of a
client_msg_id carries the same seq. Prints one JSON line {"channels": {id: {cmid: seq}},
"problems": [...], "stats": {...}, "measured": {...}}; exits 1 when there are problems.
"""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.parse
import uuid

import websockets

from chat_harness import Node, Redis, Sender, finish, problem, report, stats
from parley_http import API

parser = argparse.ArgumentParser()
parser.add_argument("--parley", required=True)
parser.add_argument("--scenario", required=True,
                    choices=["chat", "kill", "join", "pause", "redis", "presence", "names"])
parser.add_argument("--nodes", type=int, default=3)
parser.add_argument("--channels", type=int, default=9)
parser.add_argument("--redis-port", type=int)
parser.add_argument("--redis-dir")
parser.add_argument("--log", default="/dev/null", help="where the nodes' output goes")
args = parser.parse_args()

PREFIX = os.environ["PARLEY_REDIS_PREFIX"]
REDIS_PORT = urllib.parse.urlparse(os.environ["PARLEY_REDIS_URL"]).port or 6379
measured = {}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_node(index):
    env = os.environ.copy()
    env["PARLEY_NODE_NAME"] = f"n{index}"
    env["PARLEY_HTTP_PORT"] = str(free_port())
    return Node(args.parley, env, args.log, name=f"n{index}")


def lease_holder(channel):
    """The node name holding a channel's lease, from Redis (None when free)."""
    answer = subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "GET", f"{PREFIX}:lease:channel:{{{channel}}}"],
                            capture_output=True, text=True).stdout.strip()
    return answer.split("/")[0] if answer else None


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else None


class Cluster:
    def __init__(self, count):
        self.nodes = [make_node(i) for i in range(1, count + 1)]

    def start(self):
        for node in self.nodes:
            node.start(ready=False)
        for node in self.nodes:
            node.wait_ready()

    def live_ports(self, home):
        """Ports to try: the home node's first, then the other live ones."""
        live = [node.port for node in self.nodes if node.alive]
        return ([home] if home in live else []) + [port for port in live if port != home] or [home]

    def stop(self):
        for node in self.nodes:
            node.stop()


def setup(cluster, users_count, channels_count):
    """A workspace, users homed on the nodes round-robin, channels everyone is a member of,
    and one sender per (channel, user)."""
    api = API(cluster.nodes[0].port)
    owner = api.sign_up("owner")
    workspace = api("POST", "/api/workspaces", owner["token"], {"name": f"cluster {uuid.uuid4().hex[:6]}"})["workspace"]["id"]
    users = [api.sign_up(f"user{i}") for i in range(users_count)]
    for user in users:
        api("POST", f"/api/workspaces/{workspace}/members", owner["token"], {"email": user["email"]})
    senders = []
    channels = []
    for c in range(channels_count):
        channel = api("POST", f"/api/workspaces/{workspace}/channels", owner["token"], {"name": f"ch{c}"})["channel"]["id"]
        channels.append(channel)
        for i, user in enumerate(users):
            # Joined through the user's own node: membership is PostgreSQL's, any node may ask.
            API(cluster.nodes[i % len(cluster.nodes)].port)("POST", f"/api/channels/{channel}/join", user["token"])
            home = cluster.nodes[i % len(cluster.nodes)].port
            senders.append(Sender(user, channel, f"c{c}u{i}", lambda home=home: cluster.live_ports(home)))
    return api, owner, workspace, users, channels, senders


def owners(channels):
    return {channel: lease_holder(channel) for channel in channels}


async def load(senders, seconds):
    stop_at = time.monotonic() + seconds
    return [asyncio.create_task(sender.run(stop_at)) for sender in senders], stop_at


async def chat_scenario(cluster):
    api, owner, workspace, users, channels, senders = setup(cluster, 3, args.channels)
    running, _ = await load(senders, 6)
    await asyncio.sleep(3)
    held = owners(channels)
    measured["owners"] = {node: list(held.values()).count(node) for node in set(held.values())}
    if len(set(held.values())) < 2:
        problem(f"the channels are not spread over the nodes: {held}")
    await asyncio.gather(*running)
    result = await finish(senders)
    await removal_check(cluster, api, owner, users, channels[0], result[channels[0]])
    return result


async def removal_check(cluster, api, owner, users, channel, acknowledged):
    """user2 (home n3) is removed from `channel` through n1: its socket on n3 gets phx_close and
    no message after it; user0's next message still reaches user1 on n2."""
    topic = f"channel:{channel}"

    async def socket(user, node):
        ws = await websockets.connect(f"ws://127.0.0.1:{node.port}/socket/websocket?vsn=2.0.0&token={user['token']}",
                                      ping_interval=None)
        await ws.send(json.dumps(["1", "1", topic, "phx_join", {}]))
        return ws

    async def frames(ws, seconds):
        got = []
        try:
            while True:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), seconds)))
        except (asyncio.TimeoutError, websockets.WebSocketException):
            return got

    removed = await socket(users[2], cluster.nodes[2])
    watcher = await socket(users[1], cluster.nodes[1])
    await frames(removed, 0.5)
    await frames(watcher, 0.5)
    API(cluster.nodes[0].port)("DELETE", f"/api/channels/{channel}/members/{users[2]['id']}", owner["token"])
    closing = await frames(removed, 1.5)
    if not any(frame[3] == "phx_close" for frame in closing):
        problem(f"the removed member's socket on another node got no phx_close: {closing}")
    posted = API(cluster.nodes[0].port)("POST", f"/api/channels/{channel}/messages", users[0]["token"],
                                        {"body": "after the removal", "client_msg_id": "after-removal"})
    acknowledged["after-removal"] = posted["message"]["seq"]
    after = await frames(removed, 1.5)
    if any(frame[3] == "message_created" for frame in after):
        problem("the removed member still received a message on another node")
    seen = await frames(watcher, 1.5)
    if not any(frame[3] == "message_created" and frame[4].get("body") == "after the removal" for frame in seen):
        problem("a remaining member did not receive the message sent after the removal")
    await removed.close()
    await watcher.close()


def busiest(cluster, channels):
    held = owners(channels)
    counts = {node.name: list(held.values()).count(node.name) for node in cluster.nodes if node.alive}
    name = max(counts, key=counts.get)
    return next(node for node in cluster.nodes if node.name == name), [c for c, n in held.items() if n == name]


def first_ack_after(senders, channels, moment):
    """Per channel: seconds from `moment` until a message first sent after it was acknowledged
    (one in flight at `moment` may have been answered by the old owner just before it died)."""
    times = {}
    for sender in senders:
        if sender.channel not in channels:
            continue
        for sent_at, latency in sender.latencies:
            if sent_at >= moment:
                done = sent_at + latency - moment
                times[sender.channel] = min(times.get(sender.channel, done), done)
    return times


async def under_load_with_victim(cluster, seconds):
    """Senders on every node for `seconds`; after 3 s, the node owning the most channels."""
    _, _, _, _, channels, senders = setup(cluster, 3, args.channels)
    running, _ = await load(senders, seconds)
    await asyncio.sleep(3)
    victim, theirs = busiest(cluster, channels)
    return senders, running, victim, theirs


async def kill_scenario(cluster):
    senders, running, victim, theirs = await under_load_with_victim(cluster, 10)
    killed_at = time.monotonic()
    victim.kill()
    stats["faults"] += 1
    await asyncio.gather(*running)
    result = await finish(senders)
    failover = first_ack_after(senders, theirs, killed_at)
    missing = [c for c in theirs if c not in failover]
    if missing:
        problem(f"channels of the killed node never answered again: {missing}")
    values = list(failover.values())
    measured["killed"] = victim.name
    measured["channels_moved"] = len(theirs)
    measured["failover_seconds"] = {"p50": percentile(values, 0.5), "max": max(values) if values else None}
    measured["new_owners"] = sorted(set(owners(theirs).values()) - {None})
    if victim.name in measured["new_owners"]:
        problem("a killed node still holds a lease")
    return result


async def join_scenario(cluster):
    _, _, _, _, channels, senders = setup(cluster, 3, 24)
    running, _ = await load(senders, 12)
    await asyncio.sleep(3)
    before = owners(channels)
    newcomer = make_node(len(cluster.nodes) + 1)
    cluster.nodes.append(newcomer)
    joined_at = time.monotonic()
    await asyncio.to_thread(newcomer.start)
    await asyncio.gather(*running)
    result = await finish(senders)
    handed = [node.metrics() for node in cluster.nodes]
    count = sum(m.get("parley_handoffs_total", 0) for m in handed)
    measured["handoffs"] = count
    measured["handoff_ms_mean"] = sum(m.get("parley_handoffs_milliseconds_total", 0) for m in handed) / count if count else None
    measured["handoff_ms_longest"] = max(m.get("parley_handoff_longest_milliseconds", 0) for m in handed)
    after = owners(channels)
    moved = [c for c in channels if after[c] != before[c]]
    taken = [c for c in channels if after[c] == newcomer.name]
    measured["channels"] = len(channels)
    measured["taken_by_new_node"] = len(taken)
    measured["moved"] = len(moved)
    if not taken:
        problem("the new node took no channel")
    if stats["error_replies"]:
        problem(f"{stats['error_replies']} requests failed during the handoff: {stats.get('error_reasons')}")
    # How long writes to the moving channels waited: their slowest acknowledgements after the join.
    waits = [latency for sender in senders if sender.channel in moved
             for sent_at, latency in sender.latencies if sent_at + latency >= joined_at]
    slowest = max(((latency, sent_at, sender.channel) for sender in senders if sender.channel in moved
                   for sent_at, latency in sender.latencies if sent_at + latency >= joined_at), default=None)
    if slowest:
        measured["slowest_wait"] = {"seconds": slowest[0], "sent_after_join": slowest[1] - joined_at, "channel": slowest[2]}
    usual = [latency for sender in senders if sender.channel not in moved for _, latency in sender.latencies]
    measured["moving_channel_ack_seconds"] = {"p50": percentile(waits, 0.5), "p99": percentile(waits, 0.99),
                                              "max": max(waits) if waits else None}
    measured["other_channel_ack_seconds"] = {"p50": percentile(usual, 0.5), "p99": percentile(usual, 0.99)}
    return result


async def pause_scenario(cluster):
    senders, running, victim, theirs = await under_load_with_victim(cluster, 12)
    lost_before = victim.metrics().get("parley_leases_lost_total", 0)
    paused_at = time.monotonic()
    await asyncio.to_thread(victim.pause, 3.5)
    stats["faults"] += 1
    await asyncio.gather(*running)
    result = await finish(senders)
    lost = victim.metrics().get("parley_leases_lost_total", 0) - lost_before
    measured["paused"] = victim.name
    measured["its_channels"] = len(theirs)
    measured["leases_it_gave_up"] = lost
    measured["failover_seconds"] = max(first_ack_after(senders, theirs, paused_at).values() or [None])
    if lost < 1:
        problem("the frozen node did not step down from any lease after resuming")
    still = [c for c, holder in owners(theirs).items() if holder == victim.name]
    measured["reacquired_by_it_later"] = len(still)
    return result


async def redis_scenario(cluster, redis):
    _, _, _, _, channels, senders = setup(cluster, 3, args.channels)
    running, _ = await load(senders, 10)
    for _ in range(2):
        await asyncio.sleep(3)
        redis.kill()
        stats["faults"] += 1
        await asyncio.sleep(1)
        await asyncio.to_thread(redis.start)
    await asyncio.gather(*running)
    result = await finish(senders)
    measured["bus_reconnects"] = sum(node.metrics().get("parley_bus_reconnects_total", 0) for node in cluster.nodes)
    if measured["bus_reconnects"] < len(cluster.nodes):
        problem(f"the nodes' bus subscribers reconnected only {measured['bus_reconnects']} times")
    return result


class PresenceView:
    """A client's view of a workspace's presence, kept as Phoenix's JS `Presence` does:
    user -> {phx_ref: meta}; a user is online while they have a meta. As there, diffs that
    arrive before the join's `presence_state` wait and are applied after it."""

    def __init__(self):
        self.users = {}
        self.pending = []
        self.synced = False

    def apply(self, event, payload):
        if event == "presence_state":
            self.users = {user: {meta["phx_ref"]: meta for meta in entry["metas"]} for user, entry in payload.items()}
            self.synced = True
            for diff in self.pending:
                self.apply("presence_diff", diff)
            self.pending = []
        elif event == "presence_diff" and not self.synced:
            self.pending.append(payload)
        elif event == "presence_diff":
            for user, entry in payload.get("joins", {}).items():
                for meta in entry["metas"]:
                    self.users.setdefault(user, {})[meta["phx_ref"]] = meta
            for user, entry in payload.get("leaves", {}).items():
                for meta in entry["metas"]:
                    self.users.get(user, {}).pop(meta["phx_ref"], None)
                if not self.users.get(user):
                    self.users.pop(user, None)

    def online(self, user):
        return bool(self.users.get(user))


async def presence_scenario(cluster):
    api = API(cluster.nodes[0].port)
    owner = api.sign_up("owner")
    workspace = api("POST", "/api/workspaces", owner["token"], {"name": "presence"})["workspace"]["id"]
    twice, once = api.sign_up("two-tabs"), api.sign_up("one-tab")
    for user in (twice, once):
        api("POST", f"/api/workspaces/{workspace}/members", owner["token"], {"email": user["email"]})
    topic = f"workspace:{workspace}"
    view = PresenceView()

    async def join(user, node):
        ws = await websockets.connect(f"ws://127.0.0.1:{node.port}/socket/websocket?vsn=2.0.0&token={user['token']}",
                                      ping_interval=None)
        await ws.send(json.dumps(["1", "1", topic, "phx_join", {}]))
        return ws

    observer = await join(owner, cluster.nodes[1])

    async def watch():
        # The observer heartbeats (as Phoenix clients do) so it is never the silent one.
        async def beat():
            while True:
                await asyncio.sleep(5)
                await observer.send(json.dumps([None, "hb", "phoenix", "heartbeat", {}]))
        beating = asyncio.create_task(beat())
        try:
            async for text in observer:
                _, _, frame_topic, event, payload = json.loads(text)
                if frame_topic == topic:
                    view.apply(event, payload)
        except websockets.WebSocketException:
            pass
        finally:
            beating.cancel()

    watching = asyncio.create_task(watch())

    async def until(condition, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return True
            await asyncio.sleep(0.02)
        return condition()

    tab1 = await join(twice, cluster.nodes[0])
    tab2 = await join(twice, cluster.nodes[1])
    lone = await join(once, cluster.nodes[2])
    if not await until(lambda: len(view.users.get(twice["id"], {})) == 2 and view.online(once["id"]), 5):
        problem(f"the observer does not see both users online: {view.users}")
    if len(view.users.get(twice["id"], {})) != 2:
        problem(f"the two-tab user should have two metas (one per node): {view.users.get(twice['id'])}")
    await tab1.close()
    await asyncio.sleep(1.5)
    if not view.online(twice["id"]):
        problem("the user went offline while a socket on another node was still open")
    closed_at = time.monotonic()
    await tab2.close()
    if not await until(lambda: not view.online(twice["id"]), 5):
        problem("the user stayed online after their last socket closed")
    measured["offline_after_last_close_seconds"] = round(time.monotonic() - closed_at, 3)
    killed_at = time.monotonic()
    cluster.nodes[2].kill()
    gone = await until(lambda: not view.online(once["id"]), 15)
    measured["killed_node_user_offline_seconds"] = round(time.monotonic() - killed_at, 3)
    if not gone:
        problem("the killed node's user never went offline")
    watching.cancel()
    await observer.close()
    return {}


async def names_scenario(cluster):
    twin = make_node(1)
    started = time.monotonic()
    twin.start(ready=False)
    try:
        code = twin.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        twin.kill()
        problem("a second process with a live node's name kept running")
        return {}
    measured["refused_after_seconds"] = round(time.monotonic() - started, 3)
    if code == 0:
        problem("the second process exited 0")
    lines = []
    for _ in range(30):
        with open(args.log, "rb") as log:
            lines = [line for line in log.read().decode(errors="replace").splitlines() if "in use by a live node" in line]
        if lines:
            break
        time.sleep(0.1)
    if not lines:
        problem("no one-line error naming the live node")
    else:
        measured["error"] = lines[-1]
    if not cluster.nodes[0].ready():
        problem("the live node stopped being ready")
    return {}


async def main():
    redis = None
    if args.scenario == "redis":
        redis = Redis(args.redis_port, args.redis_dir)
        redis.start()
    cluster = Cluster(args.nodes)
    await asyncio.to_thread(cluster.start)
    try:
        if args.scenario == "redis":
            channels = await redis_scenario(cluster, redis)
        else:
            channels = await globals()[f"{args.scenario}_scenario"](cluster)
        if channels:
            await asyncio.sleep(0.5)
            for node in cluster.nodes:
                if node.alive and not await asyncio.to_thread(node.recovered, time.monotonic() + 30):
                    problem(f"node {node.name} still reports channels to recover after 30 s")
    finally:
        cluster.stop()
        if redis:
            redis.kill()
    report(channels, {"measured": measured})


asyncio.run(main())
