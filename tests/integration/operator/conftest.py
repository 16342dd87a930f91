"""Fixtures for operator integration tests (the shared stack pieces live in ``operator_stack``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from operator_stack import ADMIN_KEY, OpEnv, operator_settings, serve_gateway, sim_cluster

from agent_sandbox.operator.app import Operator
from agent_sandbox.operator.kube.client import KubeClient


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpEnv]:
    state_dir = tmp_path_factory.mktemp("opcluster")
    async with serve_gateway() as gateway, sim_cluster(state_dir) as cluster:
        operator = Operator(operator_settings(cluster, gateway_base_url=gateway.url, admin_key=ADMIN_KEY))
        await operator.start()
        kube = await KubeClient.from_kubeconfig(str(cluster.kubeconfig))
        try:
            yield OpEnv(cluster, operator, gateway, kube, state_dir)
        finally:
            await kube.close()
            await operator.stop()
