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
import os
import time
import uuid

from chat_harness import Node, Redis, Sender, finish, problem, report, stats
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
api = API(PORT)
sign_up = api.sign_up


async def main():
    node = Node(args.parley, os.environ.copy(), args.log)
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
            senders.append(Sender(user, channel, f"c{c}u{i}", lambda: [PORT]))

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
    channels = await finish(senders)
    # Channels nobody touched since the last fault are recovered by the node's own sweep.
    await asyncio.sleep(0.5)
    if not await asyncio.to_thread(node.recovered, time.monotonic() + 30):
        problem("the node still reports channels to recover after 30 s")
    node.stop()
    if redis:
        redis.kill()
    report(channels)


asyncio.run(main())
