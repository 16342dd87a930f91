"""Module-scoped data-plane stack: embedded control plane, upstreams, extproc, real Envoy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from extproc_stack import ENVOY_TOKEN, ExtprocProcess, Pods, Stack, free_port, start_upstream
from kubernetes_asyncio import client, config

from agent_sandbox.extproc.envoy_config import EnvoyPorts
from agent_sandbox.extproc.envoy_process import EnvoyProcess
from agent_sandbox.localcluster.app import LocalCluster


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    workdir = tmp_path_factory.mktemp("dataplane")
    async with LocalCluster() as cluster:
        conf = client.Configuration()
        await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
        api = client.ApiClient(conf)
        upstreams = [await start_upstream("a"), await start_upstream("b", "127.0.0.2")]
        extproc = ExtprocProcess(cluster.kubeconfig)
        await extproc.start()
        envoy = EnvoyProcess(
            EnvoyPorts(listen_port=free_port(), admin_port=free_port(), extproc_port=extproc.listen_port,
                       extproc_token=ENVOY_TOKEN, listen_address="127.0.0.1"),
            workdir / "envoy",
        )
        await envoy.start()
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            yield Stack(cluster, api, Pods(api), extproc, envoy, upstreams, http)
        finally:
            await http.close()
            await envoy.stop()
            await extproc.stop()
            for u in upstreams:
                await u.runner.cleanup()
            await api.close()
