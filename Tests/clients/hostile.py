"""Throws hostile input at a real Parley node and records how each is answered.

usage: hostile.py --parley BIN   (settings from the PARLEY_* environment, as for crash_chat.py)

Starts `parley serve`, then: malformed frames, wrong types, oversized payloads and frames, NUL
and control characters, tampered / expired / foreign tokens, malformed path ids, random
channel ids, a join flood and a sign-in flood. Each answer must carry its stable code.
Afterwards the node must still be ready, run no channel server for a channel nobody may
join, hold no lease or fence key for one, and its RSS must have stayed bounded. Prints one
JSON line {"problems": [...], "codes": {case: code}, "rss_kib": [before, after], ...};
exits 1 when there are problems.
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
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
parser.add_argument("--log", default="/dev/null")
args = parser.parse_args()

PORT = int(os.environ["PARLEY_HTTP_PORT"])
BASE = f"http://127.0.0.1:{PORT}"
SECRET = os.environ["PARLEY_TOKEN_SECRET"]
PREFIX = os.environ["PARLEY_REDIS_PREFIX"]
REDIS_PORT = os.environ["PARLEY_REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
problems, codes = [], {}


def expect(case, got, wanted):
    codes[case] = got
    if got != wanted:
        problems.append(f"{case}: answered {got!r}, expected {wanted!r}")


api = API(PORT).call


def code_of(answer):
    return (answer[1].get("error") or {}).get("code")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def jwt(claims):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def redis_keys(pattern):
    out = subprocess.run(["redis-cli", "-p", REDIS_PORT, "--scan", "--pattern", pattern], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line]


def metric(name):
    with urllib.request.urlopen(BASE + "/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.split()[-1])
    return None


class Socket:
    def __init__(self, ws):
        self.ws, self.ref = ws, 0

    async def send_raw(self, text):
        await self.ws.send(text)

    async def push(self, topic, event, payload, join_ref="1"):
        self.ref += 1
        ref = str(self.ref)
        await self.ws.send(json.dumps([join_ref, ref, topic, event, payload]))
        return await self.reply(ref)

    async def reply(self, ref=None, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic()))
            if frame[3] == "phx_reply" and (ref is None or frame[1] == ref):
                return frame[4]
        raise TimeoutError("no reply")


async def main():
    log = open(args.log, "ab")
    node = subprocess.Popen([args.parley, "serve"], stdout=log, stderr=log, env=os.environ.copy())
    for _ in range(300):
        try:
            with urllib.request.urlopen(BASE + "/readyz", timeout=1):
                break
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    try:
        await attack(node)
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
            problems.append("the node did not stop on SIGTERM")


async def attack(node):
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    status, answer = api("POST", "/api/signup", body={"email": email, "display_name": "Owner", "password": "a long enough password"})
    if status != 201:
        raise SystemExit(f"sign-up failed: {status} {answer}")
    token, user_id = answer["token"], answer["user"]["id"]
    workspace = api("POST", "/api/workspaces", token, {"name": "Hostile"})[1]["workspace"]["id"]
    channel = api("POST", f"/api/workspaces/{workspace}/channels", token, {"name": "general"})[1]["channel"]["id"]
    rss_before = rss_kib(node.pid)

    # HTTP: bodies, names, ids, tokens.
    expect("http: body not JSON", code_of(api("POST", "/api/workspaces", token, raw=b"{nope")), "invalid_payload")
    expect("http: NUL in a name", code_of(api("POST", "/api/workspaces", token, {"name": "bad\u0000name"})), "invalid_payload")
    expect("http: control character in a display name",
           code_of(api("POST", "/api/signup", body={"email": f"x{uuid.uuid4().hex[:6]}@e.com", "display_name": "a\u0007b",
                                                    "password": "a long enough password"})), "invalid_payload")
    expect("http: body over 64 KiB", code_of(api("POST", f"/api/channels/{channel}/messages", token, raw=b"x" * (70 * 1024))), "too_large")
    expect("http: NUL in a message body",
           code_of(api("POST", f"/api/channels/{channel}/messages", token, {"body": "a\u0000b"})), "invalid_payload")
    expect("http: malformed channel id", code_of(api("GET", "/api/channels/not-a-uuid/messages", token)), "not_found")
    expect("http: malformed workspace id", code_of(api("GET", "/api/workspaces/%27%3B--/channels", token)), "not_found")
    expect("http: random channel id", code_of(api("GET", f"/api/channels/{uuid.uuid4()}/messages", token)), "not_a_member")
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    expect("http: tampered token", code_of(api("GET", "/api/me", tampered)), "unauthorized")
    now = int(time.time())
    expired = jwt({"sub": user_id, "exp": now - 60, "iat": now - 120, "iss": "parley"})
    expect("http: expired token", code_of(api("GET", "/api/me", expired)), "unauthorized")
    foreign = jwt({"sub": user_id, "exp": now + 600, "iat": now, "iss": "someone-else"})
    expect("http: token of another issuer", code_of(api("GET", "/api/me", foreign)), "unauthorized")
    stranger_email = f"stranger-{uuid.uuid4().hex[:6]}@example.com"
    stranger = api("POST", "/api/signup", body={"email": stranger_email, "display_name": "S", "password": "a long enough password"})[1]
    api("POST", f"/api/workspaces/{workspace}/members", token, {"email": stranger_email})
    expect("http: a member adding members", code_of(api("POST", f"/api/workspaces/{workspace}/members", stranger["token"],
                                                         {"email": "nobody@example.com"})), "forbidden")

    # Socket: frames and payloads.
    url = f"ws://127.0.0.1:{PORT}/socket/websocket?vsn=2.0.0&token={token}"
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        socket = Socket(ws)
        topic = f"channel:{channel}"
        await socket.send_raw("this is not json")
        expect("ws: not JSON", (await socket.reply())["response"]["reason"], "invalid_payload")
        await socket.send_raw("[1, 2]")
        expect("ws: wrong arity", (await socket.reply())["response"]["reason"], "invalid_payload")
        await socket.send_raw("[" * 5000 + "]" * 5000)
        expect("ws: nested 5000 deep", (await socket.reply())["response"]["reason"], "invalid_payload")
        expect("ws: last_seq of the wrong type", (await socket.push(topic, "phx_join", {"last_seq": "abc"}))["response"]["reason"],
               "invalid_payload")
        expect("ws: join", (await socket.push(topic, "phx_join", {}))["status"], "ok")
        expect("ws: body of the wrong type", (await socket.push(topic, "new_message", {"body": 5}))["response"]["reason"],
               "invalid_payload")
        expect("ws: NUL in a body", (await socket.push(topic, "new_message", {"body": "a\u0000b"}))["response"]["reason"],
               "invalid_payload")
        big = "x" * (1024 * 1024 - 200)
        expect("ws: body of 1 MiB", (await socket.push(topic, "new_message", {"body": big}))["response"]["reason"], "too_large")
        expect("ws: unknown event", (await socket.push(topic, "explode", {}))["response"]["reason"], "unknown_event")
        expect("ws: unknown topic", (await socket.push("nowhere:1", "phx_join", {}))["response"]["reason"], "unmatched_topic")
        expect("ws: a tampered token in the join",
               (await socket.push(f"channel:{uuid.uuid4()}", "phx_join", {"token": tampered}))["response"]["reason"], "not_a_member")
        expect("ws: still serves", (await socket.push(topic, "new_message", {"body": "still here"}))["status"], "ok")

    # A frame larger than the node takes closes the socket with 1009 (message too big).
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        try:
            await ws.send("x" * (2 * 1024 * 1024))
            await asyncio.wait_for(ws.recv(), 10)
            codes["ws: frame of 2 MiB"] = "answered"
            problems.append("a 2 MiB frame was accepted")
        except websockets.ConnectionClosed as closed:
            expect("ws: frame of 2 MiB", closed.rcvd.code if closed.rcvd else None, 1009)

    async with websockets.connect(f"ws://127.0.0.1:{PORT}/socket/websocket?vsn=2.0.0", ping_interval=None) as ws:
        socket = Socket(ws)
        expect("ws: join with a tampered token", (await socket.push(f"channel:{channel}", "phx_join", {"token": tampered}))["response"]["reason"],
               "unauthorized")
        expect("ws: join with an expired token", (await socket.push(f"channel:{channel}", "phx_join", {"token": expired}))["response"]["reason"],
               "unauthorized")
    try:
        async with websockets.connect(f"ws://127.0.0.1:{PORT}/socket/websocket?vsn=2.0.0&token={tampered}") as ws:
            await ws.recv()
        problems.append("a socket with a tampered token was upgraded")
    except websockets.InvalidStatus as refused:
        # A refused upgrade gets the API's error: 403 and the code in a JSON body.
        expect("ws: upgrade with a tampered token", (refused.response.status_code, json.loads(refused.response.body)["error"]["code"]),
               (403, "unauthorized"))

    # Joins of random channel ids, as fast as a socket sends them: refused, nothing started.
    refusals = {}
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        socket = Socket(ws)
        for _ in range(3000):
            reason = (await socket.push(f"channel:{uuid.uuid4()}", "phx_join", {}))["response"].get("reason")
            refusals[reason] = refusals.get(reason, 0) + 1
    codes["ws: 3000 joins of random channels"] = refusals
    if set(refusals) - {"not_a_member", "rate_limited"} or not refusals.get("rate_limited"):
        problems.append(f"random joins answered {refusals}: expected not_a_member, then rate_limited")
    servers = metric("parley_channel_servers")
    if servers is None or servers > 1:
        problems.append(f"{servers} channel servers run after the random joins (only general may)")
    leases, fences = redis_keys(f"{PREFIX}:lease:*"), redis_keys(f"{PREFIX}:fence:*")
    codes["redis keys after the random joins"] = {"leases": len(leases), "fences": len(fences)}
    if len(fences) > 1 or len(leases) > 1:
        problems.append(f"random joins left {len(leases)} leases and {len(fences)} fence keys")

    # A sign-in flood (wrong passwords): refused with rate_limited after a few.
    answers = {}
    for _ in range(40):
        answer = code_of(api("POST", "/api/signin", body={"email": email, "password": "wrong password!"}))
        answers[answer] = answers.get(answer, 0) + 1
    codes["http: 40 sign-ins with a wrong password"] = answers
    if set(answers) - {"unauthorized", "rate_limited"} or answers.get("rate_limited", 0) < 20:
        problems.append(f"sign-in flood answered {answers}")

    rss_after = rss_kib(node.pid)
    with urllib.request.urlopen(BASE + "/readyz", timeout=5) as answer:
        expect("readyz after all of it", answer.status, 200)
    if rss_after - rss_before > 100 * 1024:
        problems.append(f"RSS grew {rss_after - rss_before} KiB")
    print(json.dumps({"problems": problems, "codes": codes, "rss_kib": [rss_before, rss_after]}))


asyncio.run(main())
sys.exit(1 if problems else 0)
