from agent_sandbox.operator.scheduling.queue import ReadyQueue, Reservations, pop_unreserved


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def test_ready_queue_is_fifo_and_deduplicated():
    q = ReadyQueue()
    assert q.extend(["a", "b", "a", "c"]) == 3
    q.discard("b")
    assert [q.pop(), q.pop(), q.pop()] == ["a", "c", None]
    assert "a" not in q and len(q) == 0


def test_reservations_expire_after_ttl():
    clock = Clock()
    r = Reservations(ttl_s=2, clock=clock)
    r.reserve("a")
    assert r.is_reserved("a")
    clock.t = 1.9
    assert r.is_reserved("a") and r.sweep() == 0
    clock.t = 2.0
    assert not r.is_reserved("a") and r.sweep() == 1 and len(r) == 0


def test_pop_skips_reserved_and_stale_pods_and_reserves_the_winner():
    clock = Clock()
    q, r = ReadyQueue(), Reservations(clock=clock)
    q.extend(["taken", "gone", "ok", "next"])
    r.reserve("taken")
    key, evicted = pop_unreserved(q, r, lambda k: k != "gone")
    assert (key, evicted) == ("ok", 1)
    assert r.is_reserved("ok")
    assert pop_unreserved(q, r, lambda k: True) == ("next", 0)
    assert pop_unreserved(q, r, lambda k: True) == (None, 0)
