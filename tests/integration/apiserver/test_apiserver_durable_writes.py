"""Acknowledged writes survive a hard kill of the API server; a failed commit is never reported as success
and never announced to watchers."""

from __future__ import annotations

import asyncio
import pathlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agent_sandbox.localcluster.app import LocalCluster, LocalClusterProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")

NS = "default"
KILLS = 5
WORKERS = 24


@dataclass
class Acked:
    """What the clients were told succeeded: per object the last acknowledged counter and version."""

    objects: dict[str, tuple[int, int]] = field(default_factory=dict)
    max_rv: int = 0

    def ack(self, name: str, n: int, rv: int) -> None:
        self.objects[name] = (n, rv)
        self.max_rv = max(self.max_rv, rv)


async def _writer(core: client.CoreV1Api, acked: Acked, round_no: int, worker: int, stop: asyncio.Event) -> int:
    """Create a ConfigMap, then bump its counter with resourceVersion-guarded patches until the server dies."""
    writes = 0
    name = f"r{round_no}-w{worker}"
    try:
        created = await core.create_namespaced_config_map(NS, {"metadata": {"name": name}, "data": {"n": "0"}})
        rv = created.metadata.resource_version
        acked.ack(name, 0, int(rv))
        writes += 1
        n = 0
        while not stop.is_set():
            patched = await core.patch_namespaced_config_map(
                name, NS, {"metadata": {"resourceVersion": rv}, "data": {"n": str(n + 1)}})
            n += 1
            rv = patched.metadata.resource_version
            acked.ack(name, n, int(rv))
            writes += 1
    except (TimeoutError, aiohttp.ClientError, ApiException, OSError):
        pass  # the server was killed: this write's outcome is unknown, and that is allowed
    return writes


async def _check_recovered(core: client.CoreV1Api, acked: Acked) -> None:
    stored = {cm.metadata.name: cm for cm in (await core.list_namespaced_config_map(NS)).items}
    for name, (n, rv) in acked.objects.items():
        assert name in stored, f"acknowledged ConfigMap {name} was lost"
        cm = stored[name]
        # An unanswered later patch may also have landed, but never less than what was acknowledged.
        assert int(cm.data["n"]) >= n, f"{name}: acknowledged n={n}, recovered n={cm.data['n']}"
        assert int(cm.metadata.resource_version) >= rv
        if int(cm.data["n"]) == n:
            assert int(cm.metadata.resource_version) == rv


async def test_acknowledged_writes_survive_sigkill(tmp_path: pathlib.Path,
                                                   make_api_client: Callable[..., client.ApiClient]) -> None:
    state = tmp_path / "state"
    acked = Acked()
    rng = random.Random(7)
    for round_no in range(KILLS + 1):
        proc = LocalClusterProcess(state_dir=state, crd_dir=None)
        await proc.start()
        try:
            async with make_api_client(proc) as api:
                core = client.CoreV1Api(api)
                await _check_recovered(core, acked)
                probe = await core.create_namespaced_config_map(NS, {"metadata": {"name": f"probe{round_no}"},
                                                                    "data": {"n": "0"}})
                assert int(probe.metadata.resource_version) > acked.max_rv  # versions keep increasing
                acked.ack(f"probe{round_no}", 0, int(probe.metadata.resource_version))
                if round_no == KILLS:
                    break
                stop = asyncio.Event()
                workers = [asyncio.create_task(_writer(core, acked, round_no, w, stop)) for w in range(WORKERS)]
                await asyncio.sleep(0.3 + rng.random() * 0.5)
                assert not any(w.done() for w in workers), "the stream of writes ended before the kill"
                assert proc.process is not None
                proc.process.kill()  # SIGKILL in the middle of the stream: no flush, no shutdown
                async with asyncio.timeout(20):
                    done = await asyncio.gather(*workers)
                assert sum(done) > WORKERS, "too few acknowledged writes to prove anything"
        finally:
            await proc.stop()


async def test_failed_commit_is_an_error_not_a_success(tmp_path: pathlib.Path,
                                                       make_api_client: Callable[..., client.ApiClient]) -> None:
    state = tmp_path / "state"
    async with LocalClusterProcess(state_dir=state, crd_dir=None) as proc, make_api_client(proc) as api:
        core = client.CoreV1Api(api)
        headers = {"Authorization": f"Bearer {proc.token}"}
        async with aiohttp.ClientSession(proc.url, headers=headers) as http:
            async with http.put("/localcluster/v1/faults", json={"commit_error_probability": 1.0}) as resp:
                assert resp.status == 200
            with pytest.raises(ApiException) as err:
                await core.create_namespaced_config_map(NS, {"metadata": {"name": "unsaved"}})
            assert err.value.status == 500
            assert "could not be saved to disk" in err.value.body and "injected fault" in err.value.body
            with pytest.raises(ApiException) as err:  # every write while the disk fails, not just the first
                await core.patch_namespace(NS, {"metadata": {"labels": {"x": "y"}}})
            assert err.value.status == 500
            async with http.put("/localcluster/v1/faults", json={}) as resp:
                assert resp.status == 200
        saved = await core.create_namespaced_config_map(NS, {"metadata": {"name": "saved"}})
        assert saved.metadata.resource_version
    log = (state / "localcluster.log").read_text()
    assert "persistence commit failed" in log
    # The failed writes were retried by the next commit: their outcome was unknown, now they are on disk.
    async with LocalClusterProcess(state_dir=state, crd_dir=None) as proc, make_api_client(proc) as api:
        core = client.CoreV1Api(api)
        names = {cm.metadata.name for cm in (await core.list_namespaced_config_map(NS)).items}
        assert {"unsaved", "saved"} <= names


async def test_a_burst_of_writes_on_a_failing_disk_gets_errors_not_successes(
        tmp_path: pathlib.Path, make_api_client: Callable[..., client.ApiClient]) -> None:
    """Many concurrent writes, so several commits fail in a row and back off: every write gets an error while
    the disk fails (none is reported saved), and a commit saves them all once it works again."""
    async with LocalClusterProcess(state_dir=tmp_path / "state", crd_dir=None) as proc, \
            make_api_client(proc) as api:
        core = client.CoreV1Api(api)
        headers = {"Authorization": f"Bearer {proc.token}"}
        async with aiohttp.ClientSession(proc.url, headers=headers) as http:
            async with http.put("/localcluster/v1/faults", json={"commit_error_probability": 1.0}) as resp:
                assert resp.status == 200
            answers = await asyncio.gather(*(core.create_namespaced_config_map(NS, {"metadata": {"name": f"b{i}"}})
                                             for i in range(48)), return_exceptions=True)
            assert all(isinstance(a, ApiException) and a.status == 500 for a in answers), answers
            async with http.put("/localcluster/v1/faults", json={}) as resp:
                assert resp.status == 200
        await core.create_namespaced_config_map(NS, {"metadata": {"name": "after"}})
        names = {cm.metadata.name for cm in (await core.list_namespaced_config_map(NS)).items}
        assert {f"b{i}" for i in range(48)} | {"after"} <= names


async def test_watchers_see_a_write_only_once_it_is_committed(tmp_path: pathlib.Path) -> None:
    async with LocalCluster(state_dir=tmp_path, crd_dir=None) as cluster, aiohttp.ClientSession(
            cluster.url, headers={"Authorization": f"Bearer {cluster.token}"}) as http:
        path = f"/api/v1/namespaces/{NS}/configmaps"
        async with http.get(path) as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        async with http.get(path, params={"watch": "1", "resourceVersion": rv}) as watch:
            await cluster.set_faults({"commit_error_probability": 1.0})
            async with http.post(path, json={"metadata": {"name": "late"}}) as resp:
                assert resp.status == 500
            with pytest.raises(TimeoutError):  # not on disk, so not announced
                await asyncio.wait_for(watch.content.readline(), 0.5)
            await cluster.set_faults({})
            line = await asyncio.wait_for(watch.content.readline(), 5)  # the retried commit releases it
            event = orjson.loads(line)
            assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "late"


async def test_wal_stays_bounded_under_a_stream_of_writes(tmp_path: pathlib.Path) -> None:
    """Checkpoints run off the write path (every 1,000 rows): without them every commit would grow the WAL."""
    async with LocalCluster(state_dir=tmp_path, crd_dir=None) as cluster, aiohttp.ClientSession(
            cluster.url, headers={"Authorization": f"Bearer {cluster.token}"}) as http:
        path = f"/api/v1/namespaces/{NS}/configmaps"
        blob = "x" * 3000

        async def worker(w: int) -> None:
            name = f"wal{w}"
            async with http.post(path, json={"metadata": {"name": name}, "data": {"n": "0"}}) as resp:
                assert resp.status == 201
            for n in range(1, 300):
                async with http.patch(f"{path}/{name}", data=orjson.dumps({"data": {"n": str(n), "b": blob}}),
                                      headers={"Content-Type": "application/merge-patch+json"}) as resp:
                    assert resp.status == 200
        async with asyncio.timeout(60):
            await asyncio.gather(*(worker(w) for w in range(8)))
        # 2,400 commits of a 3 KB object (each at least one WAL frame of a 4 KB page): ~10 MB without checkpoints.
        assert (tmp_path / "state.db-wal").stat().st_size < 6 * 1024 * 1024
