"""The real kubectl against the embedded control plane (apply, printer columns, scale, watch, finalizers)."""

from __future__ import annotations

import asyncio
import pathlib
import signal

import pytest
from kubernetes_asyncio import client

pytestmark = pytest.mark.asyncio(loop_scope="module")

POOL_YAML = """
apiVersion: agentsandbox.io/v1alpha1
kind: SandboxPool
metadata:
  name: python
  namespace: default
spec:
  replicas: 1
"""


async def test_apply_crds_and_pool_with_printer_columns_and_scale(run_kubectl, kubectl_env: dict[str, str],
                                                                 tmp_path: pathlib.Path) -> None:
    out = await run_kubectl("apply", "-f", kubectl_env["CRD_DIR"])
    assert "sandboxpools.agentsandbox.io" in out.stdout
    pool = tmp_path / "pool.yaml"
    pool.write_text(POOL_YAML)
    out = await run_kubectl("apply", "-f", str(pool))
    assert "sandboxpool.agentsandbox.io/python created" in out.stdout
    table = (await run_kubectl("get", "sbp")).stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "PHASE", "REPLICAS"] and table[0].split()[-1] == "AGE"
    assert table[1].split()[:2] == ["python", "1"]
    await run_kubectl("scale", "sbp/python", "--replicas=3")
    replicas = await run_kubectl("get", "sbp", "python", "-o",
                                 "jsonpath={.spec.replicas}/{.spec.podCreationImagePolicy}")
    assert replicas.stdout == "3/IdleImage"  # scaled, and the CRD schema default was applied
    again = await run_kubectl("apply", "-f", str(pool))
    assert "configured" in again.stdout
    invalid = await run_kubectl("scale", "sbp/python", "--replicas=-1", check=False)
    assert invalid.returncode != 0


async def test_label_selector_and_delete_with_finalizer(run_kubectl, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, phase in (("k-idle", "idle"), ("k-run", "running")):
        await core.create_namespaced_pod("default", {"metadata": {
            "name": name, "labels": {"agentsandbox.io/sandbox-phase": phase}, "finalizers": ["test/hold"]},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}})
    out = await run_kubectl("get", "pods", "-l", "agentsandbox.io/sandbox-phase=idle",
                         "-o", "name")
    assert out.stdout.split() == ["pod/k-idle"]
    await run_kubectl("delete", "pod", "k-idle", "--wait=false")
    held = await core.read_namespaced_pod("k-idle", "default")
    assert held.metadata.deletion_timestamp is not None
    status = await run_kubectl("get", "pod", "k-idle", "--no-headers")
    assert "Terminating" in status.stdout
    await core.patch_namespaced_pod("k-idle", "default", {"metadata": {"finalizers": None}})
    gone = await run_kubectl("get", "pod", "k-idle", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    await core.patch_namespaced_pod("k-run", "default", {"metadata": {"finalizers": None}})


async def test_get_pods_watch_streams_changes(api: client.ApiClient, kubectl_env: dict[str, str]) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "kw"}})
    proc = await asyncio.create_subprocess_exec(kubectl_env["KUBECTL"], "get", "pods", "-n", "kw", "-w",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=kubectl_env)
    try:
        assert proc.stdout is not None
        await asyncio.sleep(1.0)
        await core.create_namespaced_pod("kw", {"metadata": {"name": "watched"},
                                                "spec": {"containers": [{"name": "c", "image": "i:1"}]}})
        await core.patch_namespaced_pod_status("watched", "kw", {"status": {"phase": "Running"}})
        lines = []
        async with asyncio.timeout(10):
            while not any("Running" in line for line in lines):
                lines.append((await proc.stdout.readline()).decode())
        assert any(line.startswith("watched") and "Pending" in line for line in lines)
        assert any(line.startswith("watched") and "Running" in line for line in lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
