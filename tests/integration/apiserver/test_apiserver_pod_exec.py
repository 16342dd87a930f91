"""pods/exec through the embedded API server into a real local-node sandbox, with kubectl and kubernetes_asyncio."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import ClientSession
from kubernetes_asyncio import client, config
from kubernetes_asyncio.stream import WsApiClient

from agent_sandbox.localcluster.app import LocalCluster

CLUSTER_NODE = "local"  # the shared ``cluster`` fixture runs a local node for this module
pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="the local node needs bubblewrap")]

# The container leaves traces only an exec that really joined it can see: a file in its private /tmp,
# its capability sets in its log, its own env var and hostname.
SCRIPT = "echo from-container > /tmp/marker; grep -E '^Cap(Prm|Eff)' /proc/self/status; exec sleep 120"
EXEC_PATH = "/api/v1/namespaces/default/pods/{}/exec"



@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube_conf(cluster: LocalCluster) -> client.Configuration:
    """The kubeconfig's configuration (TLS + token), as the operator loads it."""
    conf = client.Configuration()
    await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
    return conf


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(api: client.ApiClient) -> AsyncIterator[client.CoreV1Api]:
    """A running sandbox pod ``target`` whose container wrote /tmp/marker and logged its capabilities."""
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod("default", {"metadata": {"name": "target"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "host", "command": ["/bin/sh", "-c", SCRIPT],
                        "workingDir": "/usr", "env": [{"name": "GREETING", "value": "hello from spec"}]}]}})
    deadline = time.monotonic() + 30
    while "CapEff" not in await core.read_namespaced_pod_log("target", "default"):
        assert time.monotonic() < deadline, "the container never started"
        await asyncio.sleep(0.1)
    yield core
    await core.delete_namespaced_pod("target", "default")


async def exec_raw(conf: client.Configuration, command: list[str], *, pod: str = "target",
                   stdin: bytes | None = None) -> tuple[bytes, bytes, dict[str, Any]]:
    """Exec with kubernetes_asyncio's WsApiClient, reading the channels: (stdout, stderr, error Status)."""
    out, err, status = b"", b"", b""
    async with WsApiClient(configuration=conf) as ws:
        api = client.CoreV1Api(api_client=ws)
        connect = await api.connect_get_namespaced_pod_exec(
            pod, "default", command=command, stdout=True, stderr=True, stdin=stdin is not None, tty=False,
            _preload_content=False)
        async with connect as sock:
            if stdin is not None:
                await sock.send_bytes(b"\x00" + stdin)
            async for msg in sock:
                channel, data = msg.data[0], msg.data[1:]
                if channel == 1:
                    out += data
                elif channel == 2:
                    err += data
                elif channel == 3:
                    status += data
                if stdin is not None and b"\n" in out:
                    await sock.close()  # v4 has no end-of-stdin signal: the client hangs up
    return out, err, json.loads(status) if status else {}


async def test_wsapiclient_runs_inside_the_container(target: client.CoreV1Api, kube_conf: client.Configuration,
                                                     ) -> None:
    async with WsApiClient(configuration=kube_conf) as ws:
        out = await client.CoreV1Api(api_client=ws).connect_get_namespaced_pod_exec(
            "target", "default", command=["sh", "-c", 'cat /tmp/marker; echo "$GREETING"; hostname; pwd'],
            stdout=True, stderr=True, stdin=False, tty=False)
    assert out.splitlines() == ["from-container", "hello from spec", "target", "/usr"]
    assert not await asyncio.to_thread(os.path.exists, "/tmp/marker"), "the container's /tmp is private"


async def test_exec_joins_pid_namespace_cgroup_and_privileges(target: client.CoreV1Api,
                                                              kube_conf: client.Configuration) -> None:
    out, _, status = await exec_raw(kube_conf, ["sh", "-c", "cat /proc/1/comm; grep -E '^Cap(Prm|Eff)' "
                                                            "/proc/self/status; cat /proc/self/cgroup"])
    assert status == {"metadata": {}, "status": "Success"}
    lines = out.decode().splitlines()
    assert lines[0] == "bwrap", "pid 1 is the sandbox's init, not the host's"
    container_caps = [line for line in (await target.read_namespaced_pod_log("target", "default")).splitlines()
                      if line.startswith("Cap")]
    assert lines[1:3] == container_caps, "the exec has the container's capabilities, not the node's"
    pids_line = next((line for line in lines[3:] if ":pids:" in line), None)
    if pids_line is not None:  # cgroup v1 pids controller: the exec sits at the root of the container's
        assert pids_line.endswith(":pids:/")  # cgroup namespace, i.e. in the container's own pids cgroup


async def test_exit_code_stderr_and_missing_executable(target: client.CoreV1Api,
                                                       kube_conf: client.Configuration) -> None:
    out, err, status = await exec_raw(kube_conf, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (out, err) == (b"out\n", b"err\n")
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert WsApiClient.parse_error_data(json.dumps(status)) == 3
    _, err, status = await exec_raw(kube_conf, ["no-such-tool"])
    assert WsApiClient.parse_error_data(json.dumps(status)) == 127
    assert b"executable file not found" in err


async def test_stdin_over_v4(target: client.CoreV1Api, kube_conf: client.Configuration) -> None:
    out, _, _ = await exec_raw(kube_conf, ["cat"], stdin=b"piped line\n")
    assert out == b"piped line\n"


async def test_kubectl_exec_output_exit_code_and_stdin(run_kubectl, kubectl_env: dict[str, str],
                                                      target: client.CoreV1Api) -> None:
    ok = await run_kubectl("exec", "target", "--", "sh", "-c", "echo hi from kubectl; cat /tmp/marker")
    assert ok.stdout == "hi from kubectl\nfrom-container\n"
    failed = await run_kubectl("exec", "target", "--", "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7
    # kubectl speaks v5 first: at the end of its stdin it half-closes, so `wc` sees EOF and ends.
    piped = await asyncio.to_thread(subprocess.run, [kubectl_env["KUBECTL"], "exec", "-i", "target", "--", "wc", "-c"],
                                    input="hello\n", capture_output=True, text=True, timeout=30, env=kubectl_env)
    assert (piped.returncode, piped.stdout.strip()) == (0, "6"), piped.stderr


async def test_tty_session_with_resize(cluster: LocalCluster, target: client.CoreV1Api) -> None:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    query = [("command", "sh"), ("command", "-c"), ("command", "read -r _; [ -t 0 ] && echo terminal; stty size"),
             ("stdin", "true"), ("stdout", "true"), ("tty", "true")]
    out = b""
    async with ClientSession(cluster.url, headers=headers) as session, session.ws_connect(
            EXEC_PATH.format("target"), params=query, protocols=("v5.channel.k8s.io",)) as sock:
        assert sock.protocol == "v5.channel.k8s.io"
        await sock.send_bytes(b"\x04" + json.dumps({"Width": 100, "Height": 33}).encode())
        await asyncio.sleep(0.2)
        await sock.send_bytes(b"\x00go\r")
        status = b""
        async with asyncio.timeout(10):
            async for msg in sock:
                if msg.data[0] == 1:
                    out += msg.data[1:]
                elif msg.data[0] == 3:
                    status += msg.data[1:]
    assert b"terminal\r\n33 100\r\n" in out, out  # a pty: CRLF output, the size we sent
    assert json.loads(status)["status"] == "Success"


async def test_client_leaving_ends_the_command(cluster: LocalCluster, target: client.CoreV1Api,
                                               kube_conf: client.Configuration) -> None:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    query = [("command", "sh"), ("command", "-c"), ("command", "echo started; exec sleep 300"), ("stdout", "true")]
    async with ClientSession(cluster.url, headers=headers) as session, session.ws_connect(
            EXEC_PATH.format("target"), params=query, protocols=("v4.channel.k8s.io",)) as sock:
        msg = await asyncio.wait_for(sock.receive(), 10)
        assert msg.data == b"\x01started\n"
    deadline = time.monotonic() + 10
    while True:
        out, _, _ = await exec_raw(kube_conf, ["sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; "
                                                            "echo; done"])
        assert b"sleep 120" in out, "the listing shows the container's own processes"
        if b"sleep 300" not in out:
            break
        assert time.monotonic() < deadline, f"the abandoned exec still runs: {out!r}"
        await asyncio.sleep(0.2)


async def test_refusals_are_statuses_before_the_upgrade(cluster: LocalCluster, http: ClientSession,
                                                        target: client.CoreV1Api) -> None:
    ws_headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "v4.channel.k8s.io"}

    async def refused(pod: str, query: list[tuple[str, str]], headers: dict[str, str] | None = None) -> tuple[int, str]:
        sent = ws_headers if headers is None else headers
        async with http.get(EXEC_PATH.format(pod), params=query, headers=sent) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            body = await resp.json()
            assert body["kind"] == "Status"
            return resp.status, body["message"]

    run = [("command", "true"), ("stdout", "true")]
    assert (await refused("nobody", run))[0] == 404
    assert await refused("target", [("stdout", "true")]) == (
        400, "you must specify at least one command for the container")
    assert (await refused("target", [("command", "true")]))[0] == 400  # no stream attached
    assert (await refused("target", [*run, ("stdin", "maybe")]))[0] == 400
    assert (await refused("target", [*run, ("container", "sidecar")]))[0] == 400
    status, message = await refused("target", run, {})
    assert status == 400 and "Upgrade request required" in message
    status, message = await refused("target", run, {**ws_headers, "Sec-WebSocket-Protocol": "channel.k8s.io"})
    assert status == 400 and "v4.channel.k8s.io" in message
    status, message = await refused("target", run, {**ws_headers, "Sec-WebSocket-Key": "short"})
    assert (status, message) == (400, "invalid WebSocket handshake")
    async with http.post(EXEC_PATH.format("target"), params=run, headers=ws_headers) as resp:  # SPDY's verb
        assert resp.status == 400 and "SPDY is not supported" in (await resp.json())["message"]
    async with ClientSession(cluster.url) as anonymous, anonymous.get(EXEC_PATH.format("target"), params=run,
                                                                      headers=ws_headers) as resp:
        assert resp.status == 401


async def test_pod_not_running_or_on_a_remote_node(api: client.ApiClient, http: ClientSession,
                                                   kube_conf: client.Configuration) -> None:
    core = client.CoreV1Api(api)
    # An image the node cannot resolve never runs.
    await core.create_namespaced_pod("default", {"metadata": {"name": "never"}, "spec": {
        "containers": [{"name": "main", "image": "/does/not/exist"}]}})
    # A pod bound to a node whose agent is not in this process (its status claims it runs).
    await core.create_namespaced_pod("default", {"metadata": {"name": "elsewhere"}, "spec": {
        "nodeName": "remote-node", "containers": [{"name": "main", "image": "host"}]}})
    await core.patch_namespaced_pod_status("elsewhere", "default", {"status": {"phase": "Running",
        "containerStatuses": [{"name": "main", "image": "host", "imageID": "", "ready": True, "restartCount": 0,
                               "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}})
    try:
        deadline = time.monotonic() + 15
        while not ((await core.read_namespaced_pod("never", "default")).status.container_statuses or [None])[0]:
            assert time.monotonic() < deadline, "the node never reported the unpullable container"
            await asyncio.sleep(0.05)
        with pytest.raises(aiohttp.WSServerHandshakeError) as never:
            await exec_raw(kube_conf, ["true"], pod="never")
        assert never.value.status == 400
        started = time.monotonic()
        with pytest.raises(aiohttp.WSServerHandshakeError) as remote:
            await exec_raw(kube_conf, ["true"], pod="elsewhere")
        assert remote.value.status == 503 and time.monotonic() - started < 5
        ws_headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "v4.channel.k8s.io"}
        async with http.get(EXEC_PATH.format("never"), params=[("command", "true"), ("stdout", "true")],
                            headers=ws_headers) as resp:
            assert 'container "main" in pod "never" is not running' in (await resp.json())["message"]
        async with http.get(EXEC_PATH.format("elsewhere"), params=[("command", "true"), ("stdout", "true")],
                            headers=ws_headers) as resp:
            assert "remote-node" in (await resp.json())["message"]
    finally:
        for name in ("never", "elsewhere"):
            await core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
