"""Two real stacks (embedded control plane + operator + both APIs) as two clusters of one deployment.

``c1`` and ``c2`` share the admin key; a tenant key made in ``c1`` is copied to ``c2`` as the hub's
key sync would. :func:`write_config` writes the ConfigMap ``agentsandbox-clusters`` into a cluster.
Used by the cross-cluster tests and ``bench/crosscluster`` (they put this folder and
``tests/integration/api`` on ``sys.path``).
"""

from __future__ import annotations

import secrets
from typing import Any

import yaml
from native_stack import NativeStack

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.clusters import CONFIGMAP_KEY, CONFIGMAP_NAME
from agent_sandbox.operator.kube.client import KubeError

NS = v.SYSTEM_NAMESPACE
CM_PATH = f"/api/v1/namespaces/{NS}/configmaps"


async def _ensure_namespace(stack: NativeStack) -> None:
    assert stack.kube is not None
    try:
        await stack.kube.create("/api/v1/namespaces", {"metadata": {"name": NS}})
    except KubeError as exc:
        if not exc.conflict:
            raise


async def _write_config(stack: NativeStack, text: str) -> None:
    assert stack.kube is not None
    try:
        await stack.kube.merge_patch(f"{CM_PATH}/{CONFIGMAP_NAME}", {"data": {CONFIGMAP_KEY: text}})
    except KubeError as exc:
        if not exc.not_found:
            raise
        await stack.kube.create(CM_PATH, {"metadata": {"name": CONFIGMAP_NAME}, "data": {CONFIGMAP_KEY: text}})


def write_config(stack: NativeStack, clusters: list[dict[str, Any]]) -> None:
    """Create or update ``stack``'s cluster configuration (``clusters.yaml`` = ``{clusters: [...]}``)."""
    write_raw_config(stack, yaml.safe_dump({"clusters": clusters}))


def write_raw_config(stack: NativeStack, text: str) -> None:
    stack.run(_ensure_namespace(stack))
    stack.run(_write_config(stack, text))


def gateway_of(stack: NativeStack, name: str, **extra: Any) -> dict[str, Any]:
    """The cluster entry that points at ``stack``'s native and E2B servers."""
    return {"id": stack.cluster_id, "name": name,
            "gateway": {"nativeURL": stack.url, "e2bURL": stack.e2b_url, **extra}}


def copy_keys(src: NativeStack, dst: NativeStack) -> None:
    """What the hub's key sync does: the same API-key Secrets in every cluster."""
    assert src.kube is not None and dst.kube is not None
    path = f"/api/v1/namespaces/{NS}/secrets"
    listing = src.run(src.kube.list(path, label_selector=f"{v.LABEL_TYPE}={v.TYPE_API_KEY}"))
    dst.run(_ensure_namespace(dst))
    for secret in listing.get("items") or []:
        meta = secret["metadata"]
        body = {"metadata": {k: meta[k] for k in ("name", "labels", "annotations") if k in meta},
                "type": secret.get("type"), "data": secret.get("data")}
        dst.run(dst.kube.create(path, body))


def start_pair() -> tuple[NativeStack, NativeStack]:
    """Started stacks ``c1`` and ``c2`` (sim nodes) with one admin key; stop both when done."""
    admin = "adm-" + secrets.token_hex(16)
    one, two = NativeStack(), NativeStack()
    one.cluster_id, two.cluster_id = "c1", "c2"
    one.admin_key = two.admin_key = admin
    try:
        two.start()
        one.start()
    except BaseException:
        one.stop()
        two.stop()
        raise
    return one, two
