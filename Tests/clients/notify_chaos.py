"""Notification and upload jobs survive a node's death: three `parley serve` processes share
the job queue; a webhook receiver that answers slowly (so deliveries are in flight) and an SMTP
server (`notify_sinks.Sinks`) take the deliveries, and pictures whose thumbnails take a while
are uploaded (two at once per node); mid-run, the node running the most jobs is killed (kill -9)
and the posting goes on through the others. Every upload must end `ready` with its thumbnail.

Checks, once the queue is drained: every recipient's in-app notifications hold each mention of
them exactly once; every notification reached the webhook receiver and the SMTP server (each
request signed, each delivery keyed by its notification); prints the raw duplicate deliveries
(a delivery sent just before the kill and sent again by the node that took the job), which the
idempotency keys let receivers drop.

usage: notify_chaos.py --parley BIN [--nodes 3] [--recipients 12] [--messages 80]
Node settings come from the PARLEY_* environment (Redis URL and prefix, database, secret).
"""
import argparse
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

from chat_harness import Node, problem, problems
from notify_sinks import Sinks
from parley_http import API

parser = argparse.ArgumentParser()
parser.add_argument("--parley", required=True)
parser.add_argument("--nodes", type=int, default=3)
parser.add_argument("--recipients", type=int, default=12)
parser.add_argument("--messages", type=int, default=80)
parser.add_argument("--uploads", type=int, default=12)
parser.add_argument("--log", default="/dev/null")
args = parser.parse_args()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


secret = "chaos-webhook-secret-" + uuid.uuid4().hex[:8]
sinks = Sinks(secret=secret, delay=0.4).start()
nodes = []
for index in range(1, args.nodes + 1):
    env = os.environ.copy()
    env.update({"PARLEY_NODE_NAME": f"n{index}", "PARLEY_HTTP_PORT": str(free_port()),
                "PARLEY_NOTIFICATION_WINDOW_MS": "200", "PARLEY_JOB_POLL_MS": "50", "PARLEY_JOB_VISIBILITY_MS": "3000",
                "PARLEY_NOTIFICATION_CONCURRENCY": "4", "PARLEY_UPLOAD_CONCURRENCY": "2", "PARLEY_SMTP_URL": f"smtp://127.0.0.1:{sinks.smtp_port}",
                "PARLEY_BATCH_TIMEOUT_MS": "100", "PARLEY_DRAIN_WINDOW_MS": "500", "PARLEY_AUTH_PER_MINUTE": "10000",
                "PARLEY_LOG_LEVEL": "notice"})
    nodes.append(Node(args.parley, env, args.log, name=f"n{index}"))
for node in nodes:
    node.start(ready=False)
for node in nodes:
    node.wait_ready()


def jobs_running(node):
    """Jobs (notifications and uploads) running on `node` now (0 when it does not answer)."""
    running = 0
    try:
        with urllib.request.urlopen(node.base + "/metrics", timeout=2) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith("parley_jobs_running{"):
                    running += float(line.rpartition(" ")[2])
    except (urllib.error.URLError, OSError):
        pass
    return running


def upload(port, token, workspace, data, name):
    """A multipart upload of a PNG; the upload's JSON."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"workspace_id\"\r\n\r\n{workspace}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n"
            ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/uploads", data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())["upload"]


def alive_api(turn):
    live = [node for node in nodes if node.alive]
    return API(live[turn % len(live)].port)


api = API(nodes[0].port)
owner = api.sign_up("owner")
workspace = api("POST", "/api/workspaces", owner["token"], {"name": f"notify {uuid.uuid4().hex[:6]}"})["workspace"]["id"]
channel = api("POST", f"/api/workspaces/{workspace}/channels", owner["token"], {"name": "alerts"})["channel"]["id"]
recipients = []
for i in range(args.recipients):
    user = api.sign_up(f"r{i}")
    api("POST", f"/api/workspaces/{workspace}/members", owner["token"], {"email": user["email"]})
    api("POST", f"/api/channels/{channel}/join", user["token"])
    api("PUT", "/api/notifications/settings", user["token"], {"webhook_url": sinks.url, "webhook_secret": secret, "email": True})
    recipients.append(user)

# Pictures of one colour: small, and each thumbnail takes a moment.
picture_path = os.path.join(os.path.dirname(os.path.abspath(args.log)) if args.log != "/dev/null" else "/tmp",
                            f"parley-chaos-{uuid.uuid4().hex[:8]}.png")
subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=6000x6000", "-frames:v", "1", picture_path],
               check=True)
with open(picture_path, "rb") as file:
    picture = file.read()
os.remove(picture_path)
uploads = []

mentions = {}   # message id -> recipient id
killed = None
measured = {}
started = time.monotonic()
for k in range(args.messages):
    target = recipients[k % len(recipients)]
    body = {"body": f"@r{k % len(recipients)} alert {k}", "client_msg_id": f"alert-{k}"}
    deadline = time.monotonic() + 30
    while True:
        status, answer = alive_api(k).call("POST", f"/api/channels/{channel}/messages", owner["token"], body)
        if status == 201:
            mentions[answer["message"]["id"]] = target["id"]
            break
        if time.monotonic() > deadline:
            problem(f"message {k} not accepted: {status} {answer}")
            break
        time.sleep(0.2)
    if len(uploads) < args.uploads and k % 6 == 0:
        try:
            uploads.append(upload(alive_api(k).base.rpartition(":")[2], owner["token"], workspace, picture, f"picture-{k}.png")["id"])
        except (urllib.error.URLError, OSError) as error:
            problem(f"upload {k} refused: {error}")
    if killed is None and k >= args.messages // 2:
        # The node running the most notification jobs now is killed.
        busiest = max((node for node in nodes if node.alive), key=jobs_running)
        running = jobs_running(busiest)
        if running > 0 or k >= args.messages * 3 // 4:
            busiest.kill()
            killed = busiest.name
            measured["killed"] = {"node": killed, "jobs_running": running, "after_messages": k + 1,
                                  "webhooks_received_before": len(sinks.webhooks)}
    time.sleep(0.05)
if killed is None:
    problem("no node was killed")
measured["posting_seconds"] = round(time.monotonic() - started, 2)

# Wait until every recipient's notifications have reached both receivers.
deadline = time.monotonic() + 90
while True:
    notifications = {}
    for user in recipients:
        listed = alive_api(0)("GET", "/api/notifications?limit=200", user["token"])["notifications"]
        for notification in listed:
            notifications[notification["id"]] = (user["id"], notification)
    with sinks.lock:
        hook_keys = [hook["key"] for hook in sinks.webhooks]
        mail_keys = [mail["key"] for mail in sinks.mails]
    wanted = {f"notification-{nid}" for nid in notifications}
    covered = sum(1 for user_items in notifications.values() for item in user_items[1]["items"])
    if covered >= len(mentions) and wanted <= set(hook_keys) and {f"<{key}@parley>" for key in wanted} <= set(mail_keys):
        break
    if time.monotonic() > deadline:
        problem(f"after 90 s: {len(wanted - set(hook_keys))} notifications without a webhook, "
                f"{len({f'<{key}@parley>' for key in wanted} - set(mail_keys))} without a mail, {covered} of {len(mentions)} mentions notified")
        break
    time.sleep(0.5)
time.sleep(2)  # anything sent twice late shows up now

# Every upload ends ready, with its thumbnail, whichever node ran (or re-ran) its job.
upload_states = {}
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    upload_states = {uid: alive_api(0)("GET", f"/api/uploads/{uid}", owner["token"])["upload"] for uid in uploads}
    if all(state["status"] in ("ready", "infected", "failed", "cancelled") for state in upload_states.values()):
        break
    time.sleep(0.5)
for uid, state in upload_states.items():
    if state["status"] != "ready" or not state["thumbnail"]:
        problem(f"upload {uid} ended {state['status']} (thumbnail {state['thumbnail']}): {state.get('error')}")

seen = {}
for nid, (user, notification) in notifications.items():
    for item in notification["items"]:
        if mentions.get(item["message_id"]) != user:
            problem(f"notification {nid} of {user} holds message {item['message_id']} that did not mention them")
        seen[item["message_id"]] = seen.get(item["message_id"], 0) + 1
for message, recipient in mentions.items():
    if seen.get(message, 0) != 1:
        problem(f"the mention in {message} is in {seen.get(message, 0)} notifications of its recipient (expected 1)")
with sinks.lock:
    hooks, mails = list(sinks.webhooks), list(sinks.mails)
for hook in hooks:
    if hook["signature_valid"] is not True:
        problem(f"a webhook with a bad signature: {hook['key']}")
    if hook["key"] not in wanted:
        problem(f"a webhook for no notification: {hook['key']}")
expected_mail = {f"<{key}@parley>" for key in wanted}
for mail in mails:
    if mail["key"] not in expected_mail:
        problem(f"a mail for no notification: {mail['key']}")
measured.update({
    "mentions": len(mentions), "notifications": len(notifications), "uploads": len(uploads),
    "webhooks": {"received": len(hooks), "distinct": len({hook["key"] for hook in hooks})},
    "mails": {"received": len(mails), "distinct": len({mail["key"] for mail in mails})},
})
for node in nodes:
    node.stop()
sinks.stop()
print(json.dumps({"problems": problems, "measured": measured, "notification_ids": sorted(notifications), "upload_ids": uploads}))
raise SystemExit(1 if problems else 0)
