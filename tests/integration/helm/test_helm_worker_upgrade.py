"""Generated credentials survive upgrades: Helm's `lookup` reads them back from a live API server.

Rendering here is cluster-aware (helm-python-sdk's Config.render, the same code path `helm upgrade` uses for
templates), against the embedded control plane.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import helm_python as helm
import pytest
import pytest_asyncio
import yaml
from helm_worker import NAMESPACE, RELEASE

from agent_sandbox.localcluster.app import LocalCluster
from agent_sandbox.operator.kube.client import KubeClient

SECRET_TEMPLATE = "agent-sandbox-worker/templates/credentials-secret.yaml"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[LocalCluster]:
    async with LocalCluster(crd_dir=None) as running:
        yield running


async def _render_secret(cluster: LocalCluster, chart: helm.Chart, **opts: object) -> dict:
    def render() -> dict[str, str]:
        with helm.Config(kubeconfig_path=str(cluster.kubeconfig), namespace=NAMESPACE) as config:
            return config.render(chart, {}, name=RELEASE, namespace=NAMESPACE, **opts)

    manifests = await asyncio.wait_for(asyncio.to_thread(render), 60)
    return yaml.safe_load(manifests[SECRET_TEMPLATE])


async def test_upgrade_keeps_the_generated_admin_key_and_secret(cluster, chart):
    kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    try:
        first = await _render_secret(cluster, chart, is_install=True)
        again = await _render_secret(cluster, chart, is_install=True)
        assert first["data"] != again["data"], "nothing in the cluster yet: each install generates new credentials"
        await kube.create(SECRETS, first)  # what the first install leaves behind
        upgraded = await _render_secret(cluster, chart, is_upgrade=True, revision=2)
        assert upgraded["data"] == first["data"]
        stored = await kube.get(f"{SECRETS}/agent-sandbox-credentials")
        assert stored["data"] == upgraded["data"]
    finally:
        await kube.close()
