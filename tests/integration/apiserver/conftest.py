"""Fixtures for the embedded API server tests: one in-process cluster per module and real clients."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio
from aiohttp import ClientSession
from kubernetes_asyncio import client

from agent_sandbox.localcluster.app import LocalCluster

REPO = pathlib.Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "deploy" / "crds"
KUBECTL = REPO / ".venv" / "bin" / "kubectl"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.example.com"},
    "spec": {
        "group": "test.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas",
                                                     "labelSelectorPath": ".status.selector"}},
            "additionalPrinterColumns": [
                {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            ],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["replicas"],
                        "properties": {
                            "replicas": {"type": "integer", "minimum": 0},
                            "size": {"type": "string", "enum": ["small", "large"], "default": "small"},
                            "color": {"type": "string", "default": "blue"},
                        },
                    },
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"}, "selector": {"type": "string"},
                        "phase": {"type": "string"}}},
                },
            }},
        }],
    },
}


def api_client_for(cluster: LocalCluster) -> client.ApiClient:
    configuration = client.Configuration(host=cluster.url)
    configuration.api_key = {"BearerToken": cluster.token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return client.ApiClient(configuration)


@pytest.fixture(scope="session")
def make_api_client() -> Callable[[LocalCluster], client.ApiClient]:
    """Factory for an ApiClient on a cluster's plain-HTTP URL with its bearer token."""
    return api_client_for


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    """The module's cluster: no node, or the node a module names in ``CLUSTER_NODE`` (e.g. ``"local"``,
    with its own state directory for the sandboxes' files)."""
    node = getattr(request.module, "CLUSTER_NODE", None)
    if node is None:
        async with LocalCluster(crd_dir=CRD_DIR, bookmark_interval=0.3) as running:
            yield running
        return
    async with LocalCluster(state_dir=tmp_path_factory.mktemp(f"{node}-cluster"), node=node,
                            node_name=f"{node}-node") as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(cluster: LocalCluster) -> AsyncIterator[client.ApiClient]:
    async with api_client_for(cluster) as api_client:
        yield api_client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def widgets(api: client.ApiClient) -> str:
    """Install the Widget test CRD through the API; returns its group."""
    ext = client.ApiextensionsV1Api(api)
    await ext.create_custom_resource_definition(WIDGET_CRD)
    return "test.example.com"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(cluster: LocalCluster) -> AsyncIterator[ClientSession]:
    async with ClientSession(cluster.url, headers={"Authorization": f"Bearer {cluster.token}"}) as session:
        yield session


def kubectl(kubeconfig: pathlib.Path, home: pathlib.Path, *args: str, timeout: float = 30,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against the cluster (own HOME so discovery caches never leak between tests)."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}
    result = subprocess.run([str(KUBECTL), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def kubectl_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    home = tmp_path_factory.mktemp("kubectl-home")
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def kubectl_env(cluster: LocalCluster, kubectl_home: pathlib.Path) -> dict[str, str]:
    """Environment for running kubectl (binary at ``KUBECTL``) against the module's cluster."""
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(kubectl_home),
            "KUBECTL": str(KUBECTL), "CRD_DIR": str(CRD_DIR)}


@pytest.fixture(scope="module")
def run_kubectl(cluster: LocalCluster, kubectl_home: pathlib.Path
                ) -> Callable[..., Awaitable[subprocess.CompletedProcess[str]]]:
    """``await run_kubectl(*args, check=True)`` runs kubectl in a thread (the server shares this loop)."""

    async def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(kubectl, cluster.kubeconfig, kubectl_home, *args, check=check)

    return run
