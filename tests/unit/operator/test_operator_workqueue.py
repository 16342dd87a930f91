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


async def test_coalesced_adds_run_at_once_after_a_quiet_spell_then_once_per_window():
    q = WorkQueue()
    q.add_coalesced("a", 0.2)  # never started: at once
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(50):  # a burst of events right after a reconcile started: one delayed run
        q.add_coalesced("a", 0.2)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert loop.time() - started >= 0.15
    assert len(q) == 0
    q.done("a")


async def test_an_immediate_add_overrides_a_coalesced_delay_and_forget_drops_the_key():
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.done("a")
    q.add_coalesced("a", 10)
    assert len(q) == 0
    q.add("a")  # a pool event: not held back by the window
    assert await asyncio.wait_for(q.get(), 0.5) == "a"
    q.done("a")
    q.add_coalesced("a", 10)
    q.forget("a")  # the pool is gone: its pending run and its window go with it
    q.add_coalesced("a", 10)
    assert len(q) == 1
    q.close()
