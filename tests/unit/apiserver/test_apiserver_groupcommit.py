"""Group-commit bookkeeping: writers are released only by the commit that carries their version."""

from __future__ import annotations

import asyncio

import pytest

from agent_sandbox.localcluster.apiserver.groupcommit import CommitError, GroupCommit

CM = "configmaps"


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_writers_wait_for_the_commit_that_carries_their_version() -> None:
    commits = GroupCommit(committed_rv=10)
    commits.record((CM, ("ns", "a")), b"a1", 11)
    first = asyncio.create_task(commits.wait(11))
    batch = commits.take()
    assert batch is not None and batch.rv == 11 and batch.items == {(CM, ("ns", "a")): b"a1"}
    # Writes arriving while the commit runs form the next batch; their writers are not released by this one.
    commits.record((CM, ("ns", "a")), b"a2", 12)
    commits.record((CM, ("ns", "b")), None, 13)
    second = asyncio.create_task(commits.wait(13))
    late_first = asyncio.create_task(commits.wait(11))  # arrives during the commit of its own version
    await _settle()
    assert not first.done() and not second.done()
    commits.succeeded(batch)
    await _settle()
    assert first.done() and late_first.done() and not second.done()
    assert commits.committed_rv == 11
    batch2 = commits.take()
    assert batch2 is not None and batch2.rv == 13
    assert batch2.items == {(CM, ("ns", "a")): b"a2", (CM, ("ns", "b")): None}
    commits.succeeded(batch2)
    await asyncio.wait_for(second, 1)
    assert commits.take() is None
    await asyncio.wait_for(commits.wait(13), 1)  # already durable: returns at once


async def test_failed_commit_fails_its_writers_and_is_retried_under_newer_writes() -> None:
    commits = GroupCommit()
    commits.record((CM, ("ns", "a")), b"a1", 1)
    commits.record((CM, ("ns", "b")), b"b1", 2)
    writer = asyncio.create_task(commits.wait(2))
    batch = commits.take()
    assert batch is not None
    commits.record((CM, ("ns", "a")), b"a2", 3)  # newer than the failing batch's copy
    later = asyncio.create_task(commits.wait(3))
    await _settle()
    commits.failed(batch, "disk full")
    with pytest.raises(CommitError, match="disk full"):
        await asyncio.wait_for(writer, 1)
    assert not later.done() and commits.committed_rv == 0
    retry = commits.take()
    assert retry is not None and retry.rv == 3
    assert retry.items == {(CM, ("ns", "a")): b"a2", (CM, ("ns", "b")): b"b1"}
    commits.succeeded(retry)
    await asyncio.wait_for(later, 1)
    assert commits.committed_rv == 3 and commits.pending_count == 0


async def test_pending_map_is_bounded_by_objects_and_close_fails_waiters() -> None:
    commits = GroupCommit()
    for rv in range(1, 1001):
        commits.record((CM, ("ns", f"obj{rv % 10}")), b"x", rv)
    assert commits.pending_count == 10
    waiter = asyncio.create_task(commits.wait(1000))
    await _settle()
    commits.close()
    with pytest.raises(CommitError, match="closed"):
        await asyncio.wait_for(waiter, 1)
    with pytest.raises(CommitError):
        await commits.wait(1000)


async def test_a_cancelled_writer_does_not_cancel_the_others() -> None:
    commits = GroupCommit()
    commits.record((CM, ("ns", "a")), b"a", 1)
    impatient = asyncio.create_task(commits.wait(1))
    patient = asyncio.create_task(commits.wait(1))
    await _settle()
    impatient.cancel()
    await _settle()
    batch = commits.take()
    assert batch is not None
    commits.succeeded(batch)
    await asyncio.wait_for(patient, 1)
    assert impatient.cancelled()


async def test_a_commit_wakes_its_writers_in_the_next_loop_pass() -> None:
    """Every pass a write's answer waits is latency under load: a commit releases its writers directly."""
    commits = GroupCommit()
    commits.record((CM, ("ns", "a")), b"a", 1)
    writers = [asyncio.create_task(commits.wait(1)) for _ in range(3)]
    await asyncio.sleep(0)
    batch = commits.take()
    assert batch is not None and not any(w.done() for w in writers)
    commits.succeeded(batch)
    await asyncio.sleep(0)
    assert all(w.done() for w in writers)
