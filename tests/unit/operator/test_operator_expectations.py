from agent_sandbox.operator.controllers.expectations import Expectations


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_creations_block_until_observed():
    clock = Clock()
    exp = Expectations(clock=clock)
    assert exp.satisfied("ns/p")
    exp.expect_creations("ns/p", 2)
    assert not exp.satisfied("ns/p")
    exp.creation_observed("ns/p")
    assert not exp.satisfied("ns/p")
    exp.creation_observed("ns/p")
    assert exp.satisfied("ns/p")
    exp.creation_observed("ns/p")  # extra events never go negative
    exp.expect_creations("ns/p", 1)
    assert not exp.satisfied("ns/p")


def test_deletions_count_each_pod_once():
    exp = Expectations(clock=Clock())
    exp.expect_deletions("ns/p", ["ns/a", "ns/b"])
    exp.expect_deletions("ns/p", ["ns/a"])
    assert exp.pending("ns/p") == (0, 2)
    exp.deletion_observed("ns/p", "ns/a")
    exp.deletion_observed("ns/p", "ns/a")
    exp.deletion_observed("ns/p", "ns/zzz")
    assert not exp.satisfied("ns/p")
    exp.deletion_observed("ns/p", "ns/b")
    assert exp.satisfied("ns/p")


def test_ttl_unblocks_a_pool_whose_events_were_lost():
    clock = Clock()
    exp = Expectations(ttl_s=300, clock=clock)
    exp.expect_creations("ns/p", 5)
    clock.t = 299
    assert not exp.satisfied("ns/p")
    clock.t = 300
    assert exp.satisfied("ns/p")
    assert exp.pending("ns/p") == (0, 0)
    exp.expect_creations("ns/p", 1)
    assert exp.pending("ns/p") == (1, 0)
    exp.forget("ns/p")
    assert exp.satisfied("ns/p")
