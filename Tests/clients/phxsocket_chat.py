"""Drives a Parley node with phxsocket, a Phoenix Channels client from PyPI, unmodified.

usage: phxsocket_chat.py PORT
Signs two users up over HTTP, puts them in a channel, connects each with phxsocket
(vsn 1.0.0), joins, sends messages both ways, and checks replies and pushes. Exits 0 on
success; prints what failed otherwise.
"""
import json
import sys
import threading
import urllib.request
import uuid

from phxsocket import Client

from parley_http import API

PORT = int(sys.argv[1])
BASE = f"http://127.0.0.1:{PORT}"


api = API(PORT)


def sign_up(name):
    user = api.sign_up(name)
    return user["user"], user["token"]


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)


alice, alice_token = sign_up("alice")
bob, bob_token = sign_up("bob")
workspace = api("POST", "/api/workspaces", alice_token, {"name": f"Py {uuid.uuid4().hex[:6]}"})["workspace"]
channel = api("POST", f"/api/workspaces/{workspace['id']}/channels", alice_token, {"name": "python"})["channel"]
api("POST", f"/api/workspaces/{workspace['id']}/members", alice_token, {"email": bob["email"]})
api("POST", f"/api/channels/{channel['id']}/join", bob_token)
topic = f"channel:{channel['id']}"

received = []
got_message = threading.Event()


def on_created(payload):
    received.append(payload)
    got_message.set()


url = f"ws://127.0.0.1:{PORT}/socket/websocket"
alice_socket = Client(url, {"token": alice_token})
bob_socket = Client(url, {"token": bob_token})
check(alice_socket.connect(), "alice connects")
check(bob_socket.connect(), "bob connects")

bob_channel = bob_socket.channel(topic)
bob_channel.on("message_created", on_created)
check(isinstance(bob_channel.join(), dict), "bob joins")
alice_channel = alice_socket.channel(topic)
check(isinstance(alice_channel.join(), dict), "alice joins")

reply = alice_channel.push("new_message", {"body": "hello from python", "client_msg_id": "py-1"}, reply=True).wait_for_response()
check(reply["status"] == "ok" and reply["response"]["seq"] == 1, f"new_message is acknowledged with seq 1: {reply}")
check(got_message.wait(10), "bob receives message_created")
check(received[0]["body"] == "hello from python" and received[0]["user_id"] == alice["id"], f"the pushed message: {received[0]}")

bad = alice_channel.push("new_message", {"body": ""}, reply=True).wait_for_response()
check(bad["status"] == "error" and bad["response"]["reason"] == "invalid_payload", f"an empty body is refused: {bad}")
history = alice_channel.push("load_history", {"after": 0}, reply=True).wait_for_response()
check([m["seq"] for m in history["response"]["messages"]] == [1], f"history: {history}")

stranger_socket = Client(url, {})
check(stranger_socket.connect(), "a tokenless socket connects")
try:
    stranger_socket.channel(topic).join()
    check(False, "a join without a token is refused")
except Exception as error:
    check("unauthorized" in str(error), f"the refusal names the reason: {error}")

for socket in (alice_socket, bob_socket, stranger_socket):
    socket.close()
print("phxsocket: ok")
