"""Sim node settings and per-image behaviour, driven by hand through the timer heap."""

from __future__ import annotations

from typing import Any

from agent_sandbox.localcluster.node.container import Start
from agent_sandbox.localcluster.node.podstatus import PodFacts
from agent_sandbox.localcluster.node.runtime import PodRecord
from agent_sandbox.localcluster.node.settings import load_node_settings
from agent_sandbox.localcluster.node.sim import SimRuntime
from agent_sandbox.localcluster.node.timers import TimerQueue

DIGEST = "sha256:" + "7" * 64


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kw: self.events.append((name, *args))


def pod(annotations: dict[str, str] | None = None) -> PodRecord:
    return PodRecord(uid="u1", namespace="ns", name="p", spec={}, annotations=annotations or {},
                     facts=PodFacts(spec={}, host_ip="127.0.0.1", start_time=0))


def test_env_and_file_settings(tmp_path, monkeypatch) -> None:
    (tmp_path / "sim.yaml").write_text(f"pull_delay: 2.5\nimages:\n  - {{pattern: 'app:*', digest: '{DIGEST}'}}\n")
    monkeypatch.setenv("AGENT_SANDBOX_SIM_START_DELAY", "0.7")
    settings = load_node_settings("sim", tmp_path)
    assert (settings.pull_delay, settings.start_delay) == (2.5, 0.7)
    assert settings.rule("app:v1").digest == DIGEST and settings.rule("other") is None


def test_configured_digest_delays_and_image_cache(tmp_path) -> None:
    (tmp_path / "sim.yaml").write_text(
        f"pull_delay: 2\nimages:\n  - {{pattern: 'app:*', digest: '{DIGEST}', start_delay: 1}}\n")
    now = [0.0]
    timers = TimerQueue(clock=lambda: now[0])
    events = Recorder()
    sim = SimRuntime(events, timers, load_node_settings("sim", tmp_path))

    def advance(to: float) -> None:
        now[0] = to
        for cb in timers.pop_due(to):
            cb()

    p = pod()
    sim.pull(p, "main", "app:v1", 1)
    advance(1.9)
    assert events.events == []
    advance(2.0)
    assert events.events == [("pulled", "u1", "main", 1, f"docker-pullable://docker.io/library/app@{DIGEST}")]
    sim.pull(p, "main", "app:v2", 2)  # both tags share the configured digest; v2 is not cached yet
    advance(4.0)
    assert events.events[-1][-1].endswith(DIGEST)
    sim.pull(p, "main", "app:v1", 3)  # cached: no pull delay
    advance(4.0)
    assert events.events[-1][:4] == ("pulled", "u1", "main", 3)
    sim.start(p, "main", Start("c" * 64, "app:v1", "id"))
    advance(4.5)
    assert events.events[-1][0] == "pulled"
    advance(5.0)
    assert events.events[-1] == ("started", "u1", "main", "c" * 64)


def test_annotation_injection(tmp_path) -> None:
    now = [0.0]
    timers = TimerQueue(clock=lambda: now[0])
    events = Recorder()
    sim = SimRuntime(events, timers, load_node_settings("sim", tmp_path))
    p = pod({"sim.agentsandbox.io/pull-error": "bad:*", "sim.agentsandbox.io/crash": "42",
             "sim.agentsandbox.io/crash-after": "3"})
    sim.pull(p, "main", "bad:1", 1)
    sim.pull(p, "main", "good:1", 2)
    sim.start(p, "main", Start("d" * 64, "good:1", "id"))
    for cb in timers.pop_due(0.0):
        cb()
    names = [e[0] for e in events.events]
    assert names == ["pull_failed", "pulled", "started"]
    now[0] = 3.0
    for cb in timers.pop_due(3.0):
        cb()
    assert events.events[-1] == ("exited", "u1", "main", "d" * 64, 42, "Error")
