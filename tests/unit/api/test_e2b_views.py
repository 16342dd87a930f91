"""E2B views of sandbox records: deadlines that do not drift, resources from the pod template."""

from datetime import UTC, datetime, timedelta

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.e2b.views import NO_DEADLINE, cpu_and_memory, deadline, listed_sandbox, sandbox_detail

RECORD = {"sandboxId": "c1-x", "namespace": "ns", "poolName": "py", "claimedAt": "2026-01-01T10:00:00Z",
          "startedAt": "2026-01-01T10:00:01Z", "metadata": {"a": "b"}, "nodeName": "n1"}


def _pod(**annotations: str) -> dict:
    return {"metadata": {"annotations": annotations}}


def test_deadline_counts_the_idle_timeout_from_the_last_activity():
    pod = _pod(**{v.ANN_IDLE_TIMEOUT: "300", v.ANN_LAST_ACTIVE: "2026-01-01T10:05:00Z"})
    assert deadline(RECORD, pod) == datetime(2026, 1, 1, 10, 10, tzinfo=UTC)
    assert deadline(RECORD, _pod(**{v.ANN_IDLE_TIMEOUT: "60"})) == datetime(2026, 1, 1, 10, 1, tzinfo=UTC)
    assert deadline(RECORD, _pod()) is None


def test_listed_sandbox_without_timeout_reports_a_far_deadline_from_its_start():
    listed = listed_sandbox(RECORD, _pod(), None, "0.5.7")
    assert listed.endAt == datetime(2026, 1, 1, 10, 0, 1, tzinfo=UTC) + NO_DEADLINE
    assert listed.templateID == "py" and listed.clientID == "ns" and listed.state == "running"
    assert "envdAccessToken" not in listed.wire()


def test_detail_adds_node_metadata_and_keeps_nullable_domain():
    detail = sandbox_detail(RECORD, _pod(**{v.ANN_IDLE_TIMEOUT: "60"}), None, "0.5.7", token="t", domain=None)
    wire = detail.wire()
    assert wire["metadata"] == {"a": "b", "agentsandbox.io/nodeName": "n1"}
    assert wire["domain"] is None and wire["envdAccessToken"] == "t"
    assert datetime.fromisoformat(wire["endAt"]) - datetime.fromisoformat(wire["startedAt"]) < timedelta(minutes=1)


def test_cpu_and_memory_sum_requests_then_limits():
    pool = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "resources": {"requests": {"cpu": "1500m", "memory": "512Mi"}}},
        {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
        {"name": "c", "resources": {"requests": {"cpu": "bogus"}}},
    ]}}}}
    assert cpu_and_memory(pool) == (2, 1536)
    assert cpu_and_memory(None) == (0, 0)
