"""The local node: real bubblewrap sandboxes driven through the Kubernetes API."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import pathlib
import uuid

import aiohttp
import pytest
from nodekit import (
    NodeEnv,
    is_running,
    main_status,
    pids_in_namespace,
    pod_body,
    process_names,
    wait_gone,
    wait_pod,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVE = 'exec busybox httpd -f -p "$AGENT_SANDBOX_POD_IP:8000" -h /srv/www'


async def http_get(ip: str, path: str = "/", attempts: int = 100) -> str:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for _ in range(attempts):
            try:
                async with session.get(f"http://{ip}:8000{path}") as resp:
                    if resp.status == 200:
                        return (await resp.text()).strip()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing served at {ip}:8000{path}")


def sandbox_info(env: NodeEnv, uid: str) -> dict:
    (pidfile,) = list((env.state_dir / "pods" / uid).glob("*/pid"))
    return json.loads(pidfile.read_text())


async def running_pod(env: NodeEnv, name: str, image: str, script: str | None = None, **kw):
    command = ["/bin/sh", "-c", script] if script else None
    await env.core.create_namespaced_pod("default", pod_body(name, image, command=command, **kw))
    return await wait_pod(env.core, name, is_running, within=20)


async def test_pod_runs_with_its_own_loopback_ip_reachable_from_host(local: NodeEnv) -> None:
    pod = await running_pod(local, "web", "host")
    ip = pod.status.pod_ip
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.77.0.0/16")
    assert await http_get(ip) == "host"  # the default entrypoint from /mnt/agentsandbox
    st = main_status(pod)
    assert st.image == "host" and st.image_id.startswith("docker-pullable://host@sha256:")


async def test_isolation(local: NodeEnv, tmp_path_factory) -> None:
    host_file = pathlib.Path("/var/tmp") / f"asb-probe-{uuid.uuid4().hex}"
    host_file.write_text("original\n")
    try:
        script = (
            "mkdir -p /srv/www && cd /srv/www; "
            "ls /proc | grep -c '^[0-9]' > nprocs; "
            "hostname > hostname; echo $AGENT_SANDBOX_ENVD_LISTEN > envd; "
            "echo TOPSECRET > /srv/secret-a; "
            f"echo pwned > {host_file} && cat {host_file} > inside_view; "
            "touch /mnt/agentsandbox/x 2>/dev/null; echo $? > bundle_write; "
            f"ls -A {local.state_dir} > state_listing 2>&1; " + SERVE
        )
        a = await running_pod(local, "probe-a", "host", script)
        ip = a.status.pod_ip
        assert await http_get(ip, "/hostname") == "probe-a"
        assert await http_get(ip, "/envd") == f"{ip}:49983"
        # pid namespace: only the sandbox's own few processes are visible.
        assert int(await http_get(ip, "/nprocs")) <= 5
        # Writes land in the sandbox's overlay, never in host files; the bundle is read-only.
        assert await http_get(ip, "/inside_view") == "pwned"
        assert host_file.read_text() == "original\n"
        assert await http_get(ip, "/bundle_write") != "0"
        assert await http_get(ip, "/state_listing") == ""
        (secret,) = list((local.state_dir / "pods" / a.metadata.uid).glob("*/upper/srv/secret-a"))
        script_b = (
            f"mkdir -p /srv/www; (cat {secret} || cat /srv/secret-a) > /srv/www/steal 2>&1; "
            "ls -A /srv > /srv/www/srv_listing; " + SERVE
        )
        b = await running_pod(local, "probe-b", "host", script_b)
        stolen = await http_get(b.status.pod_ip, "/steal")
        assert "TOPSECRET" not in stolen and "No such file" in stolen
        assert secret.read_text() == "TOPSECRET\n"  # it does exist, in probe-a's own overlay
        assert "secret-a" not in await http_get(b.status.pod_ip, "/srv_listing")
    finally:
        host_file.unlink()


async def test_image_swap_restarts_in_new_root_keeping_pod_ip(local: NodeEnv) -> None:
    pod = await running_pod(local, "swap", "host")
    ip, before = pod.status.pod_ip, main_status(pod)
    assert await http_get(ip) == "host"
    await local.core.patch_namespaced_pod(
        "swap", "default", {"spec": {"containers": [{"name": "main", "image": "busybox-test:1"}]}})
    pod = await wait_pod(local.core, "swap", lambda p: is_running(p) and main_status(p).image == "busybox-test:1")
    st = main_status(pod)
    assert pod.status.pod_ip == ip
    assert st.restart_count == before.restart_count + 1
    assert st.container_id != before.container_id and st.image_id != before.image_id
    assert await http_get(ip) == "busybox-root"


async def test_idle_image_sleeps(local: NodeEnv) -> None:
    pod = await running_pod(local, "idle", "agent-sandbox/idle:latest")
    info = sandbox_info(local, pod.metadata.uid)
    for _ in range(100):
        comms = process_names(info["pid-namespace"])
        if "sleep" in comms:
            break
        await asyncio.sleep(0.03)
    assert comms == {"bwrap", "sleep"}  # the entrypoint saw the idle marker env and only sleeps


async def test_delete_kills_every_process_and_removes_dirs(local: NodeEnv) -> None:
    script = "mkdir -p /srv/www; echo up > /srv/www/index.html; sleep 1000 & sleep 1000 & " + SERVE
    pod = await running_pod(local, "doomed", "host", script)
    await http_get(pod.status.pod_ip)
    info = sandbox_info(local, pod.metadata.uid)
    assert len(pids_in_namespace(info["pid-namespace"])) >= 4  # init, two sleeps, httpd
    await local.core.delete_namespaced_pod("doomed", "default", grace_period_seconds=1)
    await wait_gone(local.core, "doomed")
    assert pids_in_namespace(info["pid-namespace"]) == []
    assert not (local.state_dir / "pods" / pod.metadata.uid).exists()


async def test_exit_restarts_with_backoff(local: NodeEnv) -> None:
    await local.core.create_namespaced_pod("default", pod_body("exits", "host", command=["/bin/sh", "-c", "exit 3"]))
    pod = await wait_pod(local.core, "exits", lambda p: main_status(p) is not None and main_status(
        p).restart_count >= 2 and main_status(p).state.waiting is not None and main_status(
        p).state.waiting.reason == "CrashLoopBackOff", within=20)
    assert main_status(pod).last_state.terminated.exit_code == 3


async def test_memory_limit_oom_kills(local: NodeEnv) -> None:
    body = pod_body("hog", "host", command=["python3", "-c", "b = bytearray(300 * 2**20); import time; "
                                                              "time.sleep(60)"])
    body["spec"]["containers"][0]["resources"] = {"limits": {"memory": "48Mi"}}
    await local.core.create_namespaced_pod("default", body)
    pod = await wait_pod(local.core, "hog", lambda p: main_status(p) is not None
                         and main_status(p).last_state.terminated is not None, within=20)
    term = main_status(pod).last_state.terminated
    assert (term.exit_code, term.reason) == (137, "OOMKilled")


async def test_pids_limit(local: NodeEnv) -> None:
    script = ("mkdir -p /srv/www; (i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo $i > /srv/www/forks; "
              "sleep 2 & done) 2>/dev/null; sleep 3; " + SERVE)
    pod = await running_pod(local, "forker", "host", script)
    forks = int(await http_get(pod.status.pod_ip, "/forks", attempts=200))
    assert 10 < forks < 64  # pids_limit 64 in the test settings


async def test_cpu_limit(local: NodeEnv) -> None:
    prog = ("import time; w = time.time(); c = time.process_time()\n"
            "while time.time() - w < 1.0: pass\n"
            "open('/srv/www/cpu', 'w').write(str(time.process_time() - c))")
    body = pod_body("spinner", "host", command=["/bin/sh", "-c", f'mkdir -p /srv/www; python3 -c "{prog}"; '
                                                                   + SERVE])
    body["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "200m"}}
    await local.core.create_namespaced_pod("default", body)
    pod = await wait_pod(local.core, "spinner", is_running)
    cpu = float(await http_get(pod.status.pod_ip, "/cpu", attempts=100))
    assert cpu < 0.5  # 0.2 cores for 1 s of wall time


async def test_node_restart_cleans_up_and_restarts_with_same_ip(local: NodeEnv) -> None:
    pod = await running_pod(local, "survivor", "host")
    ip, before = pod.status.pod_ip, main_status(pod)
    info = sandbox_info(local, pod.metadata.uid)
    await local.restart_node("local")
    assert pids_in_namespace(info["pid-namespace"]) == []
    pod = await wait_pod(local.core, "survivor", lambda p: is_running(p) and main_status(
        p).container_id != before.container_id, within=20)
    st = main_status(pod)
    assert pod.status.pod_ip == ip and st.restart_count == before.restart_count + 1
    assert st.last_state.terminated.reason == "Unknown"
    assert await http_get(ip) == "host"
