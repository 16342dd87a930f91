"""Fault configuration and the dice it rolls."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent_sandbox.localcluster.apiserver.faults import FaultConfig, FaultInjector


def test_fault_config_bounds_and_dice() -> None:
    with pytest.raises(ValidationError):
        FaultConfig(conflict_probability=2)
    with pytest.raises(ValidationError):
        FaultConfig.model_validate({"unknown_fault": 1})
    assert not FaultConfig().active
    injector = FaultInjector(FaultConfig(conflict_probability=1.0, watch_drop_after_events=3), seed=1)
    assert injector.conflict() and not injector.error()
    assert not injector.drop_watch(2) and injector.drop_watch(3)
    assert FaultConfig(latency_ms={"write": 20}).latency_seconds("write") == 0.02
