"""Route table: watch state, pushed routes, and never routing an old id to a new tenant."""

from __future__ import annotations

from agent_sandbox.extproc.activity import ActivityTracker, rfc3339
from agent_sandbox.extproc.routes import PodView, Resolution, RouteTable, pod_view

A, B = "c1-01jc3k5m7n9p2q4r6s8t0v1w2a", "c1-01jc3k5m7n9p2q4r6s8t0v1w2b"


def pod(name: str, sid: str | None, phase: str = "running", ip: str | None = "10.0.0.1") -> PodView:
    return PodView("ns", name, ip, phase, sid, running=True)


def test_routable_only_when_running_with_ip_and_matching_id() -> None:
    t = RouteTable()
    t.upsert_pod(pod("p1", A))
    assert t.resolve(A, 0) == (Resolution.ROUTABLE, "10.0.0.1")
    for phase in ("idle", "starting", "stopping", "failed"):
        t.upsert_pod(pod("p1", A, phase))
        assert t.resolve(A, 0) == (Resolution.UNHEALTHY, None)
    t.upsert_pod(pod("p1", A, ip=None))
    assert t.resolve(A, 0)[0] is Resolution.UNHEALTHY
    assert t.resolve(B, 0) == (Resolution.UNKNOWN, None)


def test_relabel_moves_the_index_and_delete_forgets() -> None:
    t = RouteTable()
    t.upsert_pod(pod("p1", A))
    t.upsert_pod(pod("p1", B))
    assert t.resolve(A, 0)[0] is Resolution.UNKNOWN
    assert t.resolve(B, 0)[0] is Resolution.ROUTABLE
    t.delete_pod("ns", "p1")
    assert t.resolve(B, 0)[0] is Resolution.UNKNOWN


def test_push_is_trusted_only_until_the_watch_confirms_or_disagrees() -> None:
    t = RouteTable(push_ttl=60)
    t.upsert_pod(pod("p1", None, "idle"))
    t.push(A, "ns", "p1", now=0)
    assert t.resolve(A, 1) == (Resolution.ROUTABLE, "10.0.0.1")  # watch lags behind the claim
    t.upsert_pod(pod("p1", A))  # watch confirms
    t.upsert_pod(pod("p1", None, "idle"))  # released; pod back to idle
    assert t.resolve(A, 2)[0] is Resolution.UNHEALTHY
    t.upsert_pod(pod("p1", B))  # next tenant
    assert t.resolve(A, 3)[0] is not Resolution.ROUTABLE
    assert t.resolve(B, 3)[0] is Resolution.ROUTABLE


def test_push_for_a_pod_of_another_tenant_is_refused_and_push_expires() -> None:
    t = RouteTable(push_ttl=10)
    t.upsert_pod(pod("p1", B))
    t.push(A, "ns", "p1", now=0)
    assert t.resolve(A, 1)[0] is Resolution.UNHEALTHY
    t.push(A, "ns", "missing", now=0)
    assert t.resolve(A, 1)[0] is Resolution.UNHEALTHY
    t.upsert_pod(pod("p2", None, "idle"))
    t.push(A, "ns", "p2", now=0)
    assert t.resolve(A, 11)[0] is Resolution.UNKNOWN
    assert t.gc(11) == 1 and t.pushed_count() == 0


def test_evict_refuses_at_once_even_while_the_watch_still_shows_running() -> None:
    t = RouteTable(stopped_ttl=100)
    t.upsert_pod(pod("p1", A))
    t.evict(A, now=0)
    assert t.resolve(A, 1) == (Resolution.UNHEALTHY, None)
    assert not t.is_running(A)
    t.upsert_pod(pod("p1", A))  # a lagging watch event from before the release
    assert t.resolve(A, 2)[0] is Resolution.UNHEALTHY
    t.upsert_pod(pod("p1", A, "stopping"))  # the watch caught up: the mark is no longer needed
    assert t.stopped_count() == 0 and t.resolve(A, 3)[0] is Resolution.UNHEALTHY


def test_evict_before_the_watch_saw_the_claim_outlives_the_push() -> None:
    t = RouteTable(push_ttl=10, stopped_ttl=100)
    t.upsert_pod(pod("p1", None, "idle"))
    t.push(A, "ns", "p1", now=0)
    t.evict(A, now=1)
    t.upsert_pod(pod("p1", A))  # the claim arrives through the watch after the kill
    assert t.resolve(A, 2)[0] is Resolution.UNHEALTHY
    assert t.gc(50) == 0 and t.resolve(A, 50)[0] is Resolution.UNHEALTHY
    assert t.gc(101) == 1 and t.stopped_count() == 0


def test_stopped_marks_are_bounded_and_skip_ids_the_watch_already_refuses() -> None:
    t = RouteTable(max_pushed=3)
    t.upsert_pod(pod("p1", A, "stopping"))
    t.evict(A, now=0)
    assert t.stopped_count() == 0
    for i in range(10):
        t.evict(f"c1-{i:026d}", now=0)
    assert t.stopped_count() == 3


def test_pushed_routes_are_bounded() -> None:
    t = RouteTable(push_ttl=1000, max_pushed=3)
    for i in range(10):
        t.push(f"c1-{i:026d}", "ns", "p", now=0)
    assert t.pushed_count() == 3


def test_relist_replaces_everything() -> None:
    t = RouteTable()
    t.upsert_pod(pod("p1", A))
    t.replace_pods([pod("p2", B)])
    assert t.resolve(A, 0)[0] is Resolution.UNKNOWN and t.resolve(B, 0)[0] is Resolution.ROUTABLE


def test_pod_view_from_raw_json_seeds_activity_from_annotations() -> None:
    view = pod_view({
        "metadata": {"namespace": "t", "name": "p", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"agentsandbox.io/sandbox-phase": "running", "agentsandbox.io/sandbox-id": A},
                     "annotations": {"agentsandbox.io/started-at": "2026-01-01T00:01:00Z",
                                     "agentsandbox.io/last-active": "2026-01-01T00:02:00Z"}},
        "status": {"phase": "Running", "podIP": "10.1.2.3"},
    })
    assert (view.sandbox_id, view.ip, view.running) == (A, "10.1.2.3", True)
    assert rfc3339(view.activity_seed or 0) == "2026-01-01T00:02:00.000Z"
    bare = pod_view({"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"}})
    assert bare.sandbox_id is None and bare.ip is None and rfc3339(bare.activity_seed or 0).startswith("2026")


def test_activity_is_bounded_and_gc_drops_dead_ids() -> None:
    act = ActivityTracker(max_entries=2)
    act.touch("a", 1)
    act.touch("b", 2)
    act.touch("a", 3)  # a becomes most recent
    act.touch("c", 4)  # evicts b, the least recently touched
    assert act.get("b") is None and act.get("a") == 3 and len(act) == 2
    act.seed("a", 2)
    assert act.get("a") == 3  # seeding never moves time backwards
    assert act.gc(lambda sid: sid == "c") == 1
    assert act.snapshot() == {"c": rfc3339(4)}
