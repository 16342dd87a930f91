import asyncio

from agent_sandbox.operator.controllers.workqueue import WorkQueue


async def test_keys_are_deduplicated_and_never_processed_concurrently():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    key = await q.get()
    assert key == "a"
    q.add("a")  # re-added while processing: queued again only after done()
    assert len(q) == 1
    q.done("a")
    assert [await q.get(), await q.get()] == ["b", "a"]


async def test_add_after_keeps_the_earliest_delay():
    q = WorkQueue()
    q.add_after("a", 5)
    q.add_after("a", 0.01)
    q.add_after("a", 1)
    key = await asyncio.wait_for(q.get(), 0.5)
    assert key == "a"
    q.done("a")
    q.close()
    q.add("b")
    assert len(q) == 0
