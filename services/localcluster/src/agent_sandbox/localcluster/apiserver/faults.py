"""Fault injection for stress tests and benchmarks.

Faults apply to resource requests only (never to discovery, health or this
control endpoint) and can be changed while the server runs with
``PUT /localcluster/v1/faults`` (bearer token required). The JSON body, all
fields optional (omitted = 0/off), replaces the whole configuration::

    {
      "latency_ms": {"read": 5, "write": 20, "watch": 0},  # added before handling; read=get/list
      "conflict_probability": 0.1,     # writes (create/update/patch/delete) fail 409 Conflict
      "error_probability": 0.05,       # any resource request fails with error_status
      "error_status": 503,             # 500..599
      "watch_drop_probability": 0.01,  # each delivered watch event may end the stream
      "watch_drop_after_events": 100,  # end every watch stream after this many events
      "commit_error_probability": 1.0  # SQLite commits fail (as on a full disk); writers get 500
    }

``GET`` on the same path returns the active configuration.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VerbClass = Literal["read", "write", "watch"]


class FaultConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: dict[VerbClass, float] = Field(default_factory=dict)
    conflict_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    error_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    error_status: int = Field(default=503, ge=500, le=599)
    watch_drop_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    watch_drop_after_events: int | None = Field(default=None, ge=1)
    commit_error_probability: float = Field(default=0.0, ge=0.0, le=1.0)

    def latency_seconds(self, verb_class: VerbClass) -> float:
        return max(0.0, self.latency_ms.get(verb_class, 0.0)) / 1000.0

    @property
    def active(self) -> bool:
        return bool(any(v > 0 for v in self.latency_ms.values()) or self.conflict_probability
                    or self.error_probability or self.watch_drop_probability or self.watch_drop_after_events
                    or self.commit_error_probability)


class FaultInjector:
    """Holds the active :class:`FaultConfig` and rolls the dice for each request or event."""

    def __init__(self, config: FaultConfig | None = None, seed: int | None = None) -> None:
        self.config = config or FaultConfig()
        self._rng = random.Random(seed)

    def error(self) -> bool:
        p = self.config.error_probability
        return p > 0 and self._rng.random() < p

    def conflict(self) -> bool:
        p = self.config.conflict_probability
        return p > 0 and self._rng.random() < p

    def commit_error(self) -> bool:
        p = self.config.commit_error_probability
        return p > 0 and self._rng.random() < p

    def drop_watch(self, delivered: int) -> bool:
        after = self.config.watch_drop_after_events
        if after is not None and delivered >= after:
            return True
        p = self.config.watch_drop_probability
        return p > 0 and self._rng.random() < p
