"""Image references, back-off, IP allocation, the timer heap and timestamps."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from agent_sandbox.localcluster.node.backoff import Backoff, go_duration
from agent_sandbox.localcluster.node.images import default_digest, digest_of_image_id, image_id, normalize_image
from agent_sandbox.localcluster.node.ipam import IpAllocator, PoolExhausted
from agent_sandbox.localcluster.node.timefmt import rfc3339
from agent_sandbox.localcluster.node.timers import TimerQueue


def test_docker_normalisation_gives_one_digest_per_image() -> None:
    assert normalize_image("ubuntu:22.04") == "docker.io/library/ubuntu:22.04"
    assert normalize_image("ubuntu") == "docker.io/library/ubuntu:latest"
    assert normalize_image("ghcr.io/org/img:1") == "ghcr.io/org/img:1"
    assert normalize_image("org/img") == "docker.io/org/img:latest"
    assert default_digest("ubuntu:22.04") == default_digest("docker.io/library/ubuntu:22.04")
    assert default_digest("ubuntu:22.04") != default_digest("ubuntu:24.04")
    pinned = "sha256:" + "ab" * 32
    assert default_digest(f"ubuntu@{pinned}") == pinned
    iid = image_id("ubuntu:22.04", pinned)
    assert iid == f"docker-pullable://docker.io/library/ubuntu@{pinned}"
    assert digest_of_image_id(iid) == pinned


def test_backoff_like_kubelet() -> None:
    crash = Backoff(10, 40)
    assert [crash.next_wait(t) for t in (0, 1, 12, 33)] == [0, 10, 20, 40]
    assert crash.next_wait(1000) == 0  # healthy for longer than twice the cap: forgotten
    pull = Backoff(10, 40, immediate_first=False)
    assert pull.next_wait(0) == 10
    assert [go_duration(s) for s in (10, 80, 300, 0.5)] == ["10s", "1m20s", "5m0s", "500ms"]


def test_ip_allocation_is_distinct_persisted_and_reusable(tmp_path) -> None:
    path = tmp_path / "ipam.json"
    ipam = IpAllocator("127.77.0.0/29", persist=path)
    ips = [ipam.allocate(f"pod-{i}") for i in range(5)]
    assert len(set(ips)) == 5 and "127.77.0.1" not in ips and "127.77.0.7" not in ips
    with pytest.raises(PoolExhausted):
        ipam.allocate("one-too-many")
    again = IpAllocator("127.77.0.0/29", persist=path)
    assert again.get("pod-3") == ips[3]
    again.release("pod-3")
    assert again.allocate("new") == ips[3]
    assert not again.reserve("other", ips[0])  # taken by pod-0


async def test_timer_queue_fires_in_deadline_order() -> None:
    now = [0.0]
    q = TimerQueue(clock=lambda: now[0])
    fired: list[str] = []
    q.call_later(5, lambda: fired.append("b"))
    q.call_later(1, lambda: fired.append("a"))
    q.call_later(9, lambda: fired.append("c"))
    now[0] = 6
    for cb in q.pop_due(now[0]):
        cb()
    assert fired == ["a", "b"] and len(q) == 1 and q.next_deadline() == 9


async def test_timer_queue_runs_a_chain_of_instant_steps_in_one_turn() -> None:
    """Zero-delay follow-ups (stop -> pull -> start) all fire before anyone else runs."""
    q = TimerQueue()
    fired: list[str] = []

    def step(name: str, then: str | None) -> None:
        fired.append(name)
        if then is not None:
            q.call_later(0, lambda: step(then, None if then == "start" else "start"))

    q.call_later(0, lambda: step("stop", "pull"))
    q.call_later(60, lambda: fired.append("later"))
    assert q.has_due()
    task = asyncio.create_task(q.run())
    try:
        for _ in range(20):  # whoever looks between two turns never sees the chain half done
            await asyncio.sleep(0)
            assert fired in ([], ["stop", "pull", "start"])
        assert fired == ["stop", "pull", "start"]
        assert not q.has_due() and len(q) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_rfc3339_truncates_to_the_second() -> None:
    assert rfc3339(0.999) == "1970-01-01T00:00:00Z"
    assert rfc3339(1732600000.5) == "2024-11-26T05:46:40Z"
    assert rfc3339(-0.5) == "1969-12-31T23:59:59Z"
