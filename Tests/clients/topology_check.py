"""Checks that docker-compose.yml describes the topology `cluster/up --nodes 3` starts.

usage: topology_check.py [--compose FILE]   (default: the repository's docker-compose.yml; runs
`cluster/up --plan`, which starts nothing)

Compared, service by service: the set of services; Redis's port and durability flags;
PostgreSQL's port; clamd's port (its mounted config); each node's environment (addresses may
differ only where compose uses a service name for 127.0.0.1, the node listens on 0.0.0.0 in its
container, and the blob folder is a named volume on every node), its health check (the plan's
/readyz on its own port) and its dependencies on healthy Redis and PostgreSQL; HAProxy's config file (the same cluster/haproxy.cfg, mounted), its environment
(the same ports, each PARLEY_NODE_i the same node), its published ports (on loopback) and its
dependencies on healthy nodes; and `haproxy -c` accepts the config with both environments.
Prints what differs and exits 1, or prints "topology: ok".
"""
import json
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
differences = []


def differ(what):
    differences.append(what)


def host_port(address):
    host, _, port = address.rpartition(":")
    return host, int(port)


def url_parts(url):
    from urllib.parse import urlparse
    parsed = urlparse(url)
    return parsed.scheme, parsed.username, parsed.hostname, parsed.port, parsed.path


environment = {key: value for key, value in os.environ.items() if not key.startswith(("PARLEY_", "PARLEY_SERVICES_"))}
environment.update({"PARLEY_CLUSTER_DIR": "/nonexistent/parley-plan", "PARLEY_BINARY": "/bin/true"})
plan = json.loads(subprocess.run([os.path.join(ROOT, "cluster", "up"), "--nodes", "3", "--plan"], capture_output=True, text=True,
                                 check=True, env=environment).stdout)
compose_file = sys.argv[sys.argv.index("--compose") + 1] if "--compose" in sys.argv else os.path.join(ROOT, "docker-compose.yml")
with open(compose_file) as file:
    compose = yaml.safe_load(file)
services = compose["services"]

if set(services) != set(plan["services"]):
    differ(f"services: compose has {sorted(services)}, cluster/up starts {sorted(plan['services'])}")


def option(command, flag):
    return command[command.index(flag) + 1] if flag in command else None


# Redis and PostgreSQL.
redis, planned = services.get("redis", {}), plan["services"]["redis"]
command = redis.get("command", [])
if int(option(command, "--port") or 6379) != planned["port"]:
    differ(f"redis port: compose {option(command, '--port')}, cluster/up {planned['port']}")
for flag in ("appendonly", "appendfsync"):
    if option(command, f"--{flag}") != planned[flag]:
        differ(f"redis {flag}: compose {option(command, f'--{flag}')}, cluster/up {planned[flag]}")
postgres = services.get("postgres", {})
if int(option(postgres.get("command", []), "-p") or 5432) != plan["services"]["postgres"]["port"]:
    differ(f"postgres port: compose {option(postgres.get('command', []), '-p')}, cluster/up {plan['services']['postgres']['port']}")
clamd = services.get("clamd", {})
clamd_port = plan["services"].get("clamd", {}).get("port")
if clamd_port is None:
    differ("cluster/up runs no clamd")
mounts = [volume.split(":") for volume in clamd.get("volumes", [])]
config = next((source for source, target, *_ in mounts if target == "/etc/clamav/clamd.conf"), None)
if config is None:
    differ("clamd does not mount its config at /etc/clamav/clamd.conf")
else:
    with open(os.path.join(ROOT, config)) as file:
        lines = [line.split() for line in file if line.strip() and not line.startswith("#")]
    if ["TCPSocket", str(clamd_port)] not in lines:
        differ(f"clamd's config ({config}) does not listen on {clamd_port} as cluster/up's does")
for service in ("redis", "postgres", "clamd"):
    if "healthcheck" not in services.get(service, {}):
        differ(f"{service} has no health check")


def same_address(compose_url, plan_url, service):
    """A URL of the plan (127.0.0.1) and of compose (the service's name): the same otherwise."""
    c, p = url_parts(compose_url), url_parts(plan_url)
    return c[2] == service and p[2] == "127.0.0.1" and (c[0], c[1], c[3], c[4]) == (p[0], p[1], p[3], p[4])


# The nodes.
for name, planned in plan["services"].items():
    if not name.startswith("node-"):
        continue
    service = services.get(name, {})
    env = {key: str(value) for key, value in (service.get("environment") or {}).items()}
    want = planned["environment"]
    if set(env) != set(want):
        differ(f"{name} settings: compose has {sorted(env)}, cluster/up gives {sorted(want)}")
    for key, value in want.items():
        got = env.get(key)
        if got is None:
            continue
        if key == "PARLEY_HTTP_HOST":
            ok = value == "127.0.0.1" and got == "0.0.0.0"
        elif key == "PARLEY_REDIS_URL":
            ok = same_address(got, value, "redis")
        elif key == "PARLEY_DATABASE_URL":
            ok = same_address(got, value, "postgres")
        elif key == "PARLEY_CLAMD_URL":
            ok = same_address(got, value, "clamd")
        elif key == "PARLEY_BLOB_DIR":
            # One folder every node shares: a named volume mounted there on each.
            volumes = [volume.split(":") for volume in service.get("volumes", [])]
            ok = any(target == got and not source.startswith((".", "/")) for source, target, *_ in volumes)
        elif key == "PARLEY_TOKEN_SECRET":
            ok = got.startswith("${PARLEY_TOKEN_SECRET:?")
        else:
            ok = got == value
        if not ok:
            differ(f"{name} {key}: compose {got!r}, cluster/up {value!r}")
    check = " ".join(service.get("healthcheck", {}).get("test", []))
    expected = f"http://127.0.0.1:{want['PARLEY_HTTP_PORT']}{plan['health']}"
    if expected not in check:
        differ(f"{name} health check: {check!r} does not ask {expected}")
    depends = service.get("depends_on", {})
    for needed in ("redis", "postgres"):
        if depends.get(needed, {}).get("condition") != "service_healthy":
            differ(f"{name} does not wait for a healthy {needed}")
    if service.get("stop_grace_period") is None:
        differ(f"{name} has no stop_grace_period for its drain")

# HAProxy.
haproxy, planned = services.get("haproxy", {}), plan["services"]["haproxy"]
mounts = [volume.split(":") for volume in haproxy.get("volumes", [])]
if not any(os.path.normpath(source) == plan["haproxy_config"] and target == "/usr/local/etc/haproxy/haproxy.cfg"
           for source, target, *_ in mounts):
    differ(f"haproxy does not mount {plan['haproxy_config']} as its config: {haproxy.get('volumes')}")
env = {key: str(value) for key, value in (haproxy.get("environment") or {}).items()}
want = planned["environment"]
if set(env) != set(want):
    differ(f"haproxy settings: compose has {sorted(env)}, cluster/up gives {sorted(want)}")
published = {host_port(port.rsplit(":", 1)[0])[1]: port for port in haproxy.get("ports", [])}
for key in ("PARLEY_HAPROXY_BIND", "PARLEY_HAPROXY_STATS"):
    port = host_port(want[key])[1]
    if key in env and host_port(env[key])[1] != port:
        differ(f"haproxy {key}: compose {env[key]}, cluster/up {want[key]}")
    if port not in published or not published[port].startswith("127.0.0.1:"):
        differ(f"haproxy port {port} is not published on loopback: {haproxy.get('ports')}")
for key, value in want.items():
    if key.startswith("PARLEY_NODE_"):
        node = f"node-{key.rsplit('_', 1)[1]}"
        if env.get(key) != f"{node}:{host_port(value)[1]}":
            differ(f"haproxy {key}: compose {env.get(key)}, cluster/up {value} ({node})")
        if haproxy.get("depends_on", {}).get(node, {}).get("condition") != "service_healthy":
            differ(f"haproxy does not wait for a healthy {node}")

# The config itself, with either environment.
if shutil.which("haproxy"):
    for label, settings in (("cluster/up", want), ("compose", env)):
        result = subprocess.run(["haproxy", "-c", "-f", os.path.join(ROOT, plan["haproxy_config"])], capture_output=True,
                                text=True, env={**os.environ, **settings, "PARLEY_HAPROXY_SOCKET": "/tmp/parley-topology-check.sock"})
        if result.returncode != 0:
            differ(f"haproxy -c refuses the config with {label}'s environment: {result.stderr.strip()[-400:]}")
else:
    differ("haproxy is not installed (cluster/test installs it): the config was not checked")

for line in differences:
    print(f"DIFFERS: {line}")
print("topology: ok" if not differences else f"topology: {len(differences)} differences")
sys.exit(1 if differences else 0)
