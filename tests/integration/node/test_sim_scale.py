"""The sim node serves many pods from one timer heap: no task per pod."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from kubernetes_asyncio import client, config
from nodekit import start_node, stop_task, write_settings

from agent_sandbox.localcluster.app import LocalCluster

PODS = 1500


@pytest.mark.slow
async def test_many_pods_without_task_per_pod(tmp_path) -> None:
    write_settings(tmp_path, "sim", {"pull_delay": 1.5, "start_delay": 0.2, "status_writers": 16})
    async with LocalCluster(event_log_size=20_000) as cluster:
        conf = client.Configuration()
        await config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=conf)
        api = client.ApiClient(conf)
        core = client.CoreV1Api(api)
        node = start_node("sim", cluster.kubeconfig, "scale-node", tmp_path)
        try:
            sem = asyncio.Semaphore(16)

            async def create(i: int) -> None:
                async with sem:
                    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"s{i}"},
                            "spec": {"containers": [{"name": "main", "image": f"img:{i % 10}"}]}}
                    resp = await core.create_namespaced_pod("default", body, _preload_content=False)
                    resp.release()

            await asyncio.gather(*(create(i) for i in range(PODS)))
            # Pulls are still pending for most pods: the node holds them as heap entries, not tasks.
            assert len(asyncio.all_tasks()) < 200
            deadline = time.monotonic() + 90
            running = 0
            while time.monotonic() < deadline:
                resp = await core.list_namespaced_pod("default", _preload_content=False)
                items = orjson.loads(await resp.read())["items"]
                running = sum(1 for p in items if (p.get("status") or {}).get("phase") == "Running")
                if running == PODS:
                    break
                assert len(asyncio.all_tasks()) < 200
                await asyncio.sleep(0.5)
            assert running == PODS
        finally:
            await stop_task(node)
            await api.close()
