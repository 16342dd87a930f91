"""Bounded TTL map, single-use exec tokens and the idempotency store."""

import asyncio

import pytest

from agent_sandbox.common.errors import ApiError
from agent_sandbox.operator.api.exec_tokens import ExecGrant, ExecTokenStore
from agent_sandbox.operator.e2b.idempotency import IdempotencyStore, fingerprint
from agent_sandbox.operator.ttlmap import TTLMap


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ttlmap_expires_and_stays_bounded():
    clock = Clock()
    m: TTLMap[str, int] = TTLMap(10, 3, clock)
    for i in range(5):
        m.put(f"k{i}", i)
    assert len(m) == 3 and m.get("k0") is None and m.get("k4") == 4
    clock.now += 11
    assert m.get("k4") is None and len(m) == 0


def test_ttlmap_pop_is_single_use():
    m: TTLMap[str, int] = TTLMap(10, 3)
    m.put("a", 1)
    assert m.pop("a") == 1
    assert m.pop("a") is None


def test_exec_token_single_use_bound_and_expiring():
    clock = Clock()
    store = ExecTokenStore(clock=clock)
    grant = ExecGrant("c1-x", "ns", "pod-1", ("main",))
    token = store.issue(grant)
    assert store.consume(token, "c1-x") == grant
    with pytest.raises(ApiError) as err:
        store.consume(token, "c1-x")
    assert err.value.status == 401
    other = store.issue(grant)
    with pytest.raises(ApiError):
        store.consume(other, "c1-y")
    with pytest.raises(ApiError):  # consumed by the failed attempt above
        store.consume(other, "c1-x")
    late = store.issue(grant)
    clock.now += 31
    with pytest.raises(ApiError):
        store.consume(late, "c1-x")
    with pytest.raises(ApiError):
        store.consume(None, "c1-x")


async def test_idempotent_create_runs_once_for_concurrent_duplicates():
    store: IdempotencyStore[str] = IdempotencyStore()
    calls = 0

    async def produce() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return f"sandbox-{calls}"

    fp = fingerprint({"templateID": "base"})
    results = await asyncio.gather(*(store.run("ns", "key-1", fp, produce) for _ in range(5)))
    assert results == ["sandbox-1"] * 5 and calls == 1
    assert await store.run("ns", "key-1", fp, produce) == "sandbox-1"
    assert await store.run("other-ns", "key-1", fp, produce) == "sandbox-2"


async def test_idempotency_key_reused_for_other_request_is_conflict():
    store: IdempotencyStore[str] = IdempotencyStore()

    async def produce() -> str:
        return "x"

    await store.run("ns", "k", fingerprint({"a": 1}), produce)
    with pytest.raises(ApiError) as err:
        await store.run("ns", "k", fingerprint({"a": 2}), produce)
    assert err.value.status == 409


async def test_failed_first_attempt_lets_the_retry_try_again():
    store: IdempotencyStore[str] = IdempotencyStore()
    attempts = 0

    async def produce() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(0.02)
            raise ApiError(429, "no idle sandboxes")
        return "ok"

    fp = fingerprint({})
    first = asyncio.create_task(store.run("ns", "k", fp, produce))
    await asyncio.sleep(0)
    second = asyncio.create_task(store.run("ns", "k", fp, produce))
    with pytest.raises(ApiError):
        await first
    assert await second == "ok"
    assert attempts == 2


async def test_bad_idempotency_key_is_400():
    store: IdempotencyStore[str] = IdempotencyStore()

    async def produce() -> str:
        return "x"

    with pytest.raises(ApiError) as err:
        await store.run("ns", "x" * 300, "fp", produce)
    assert err.value.status == 400
