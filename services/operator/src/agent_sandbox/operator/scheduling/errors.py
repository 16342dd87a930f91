"""Typed scheduler errors; the HTTP layers map them to 429 with ``Retry-After``."""

from __future__ import annotations

from typing import Any


class NoIdleSandbox(Exception):
    """No idle pod became available before the request's deadline (or the scheduler shut down)."""

    def __init__(self, namespace: str, pool: str, detail: dict[str, Any], message: str | None = None) -> None:
        super().__init__(message or "no idle sandboxes available in the pool")
        self.namespace = namespace
        self.pool = pool
        self.detail = detail

    @property
    def retry_after_s(self) -> int:
        return int(self.detail.get("retryAfter") or 1)


class QueueFull(NoIdleSandbox):
    """The pool's request queue is at capacity."""

    def __init__(self, namespace: str, pool: str, detail: dict[str, Any]) -> None:
        super().__init__(namespace, pool, detail, "scheduler queue is full")


class ClaimFailed(Exception):
    """The claim write failed for a reason other than losing a race."""
