from datetime import timedelta

from operator_pods import T0, pod, ts

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.lifecycle.timeouts import idle_decision, resolve_timeout, startup_expired


def test_resolve_order():
    assert resolve_timeout(10, 20, 120) == 10
    assert resolve_timeout(None, 20, 120) == 20
    assert resolve_timeout(None, None, 120) == 120
    assert resolve_timeout(0, 20, 120) is None


def test_startup_timeout_from_annotation_or_pool_default():
    starting = pod(phase="starting", state={"phase": "starting", "updateTimestamp": ts(0)},
                   annotations={v.ANN_STARTUP_TIMEOUT: "30"})
    assert not startup_expired(starting, None, T0 + timedelta(seconds=30))
    assert startup_expired(starting, None, T0 + timedelta(seconds=31))
    plain = pod(phase="starting", state={"phase": "starting", "updateTimestamp": ts(0)})
    assert not startup_expired(plain, None, T0 + timedelta(seconds=119))
    assert startup_expired(plain, 60, T0 + timedelta(seconds=61))
    assert not startup_expired(pod(phase="running"), 1, T0 + timedelta(days=1))


def test_idle_timeout_uses_best_activity_source():
    running = pod(phase="running", annotations={v.ANN_IDLE_TIMEOUT: "60", v.ANN_STARTED_AT: ts(0),
                                                v.ANN_LAST_ACTIVE: ts(30)})
    assert not idle_decision(running, None, T0 + timedelta(seconds=90)).expired
    d = idle_decision(running, None, T0 + timedelta(seconds=91))
    assert d.expired and "60s" in d.message()
    fresh = idle_decision(running, T0 + timedelta(seconds=80), T0 + timedelta(seconds=100))
    assert not fresh.expired and fresh.refresh_to == T0 + timedelta(seconds=80)
    older = idle_decision(running, T0 + timedelta(seconds=10), T0 + timedelta(seconds=50))
    assert older.refresh_to is None
    assert idle_decision(pod(phase="running"), None, T0) is None
    assert idle_decision(pod(phase="idle", annotations={v.ANN_IDLE_TIMEOUT: "1"}), None, T0) is None
