"""Every replica's sandbox history, derived from the pod transitions its informer sees (behaviour §14).

All operator replicas serve get/list, but only the leader runs the controllers
that release, recycle and replace pods. Were history written by whoever did
that work, a replica behind the same Service would answer 404 for a sandbox
its peer has just finished while the peer answers ``Completed``. Instead each
replica watches the same pod stream and records a sandbox when the pod
version that ends it goes by: the sandbox id leaves the pod (Stopping→Idle),
or the pod holding it fails or starts being deleted. The record is read from
that pod version alone (stop annotations, pod status, deletion and recycle
times), the watch delivers the same versions in the same order everywhere,
and the first ending of an id wins — so every replica holds the same record.
The leader also hands each new record on to be stored durably
(:mod:`.history_writer`), for replicas that start later.

The handler runs for every pod event, claims included, so it settles the
common case (no sandbox ended) with a few dictionary reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.lifecycle.history import HistoryStore
from agent_sandbox.operator.lifecycle.inplace import read_state
from agent_sandbox.operator.lifecycle.records import finished_record
from agent_sandbox.operator.timeutil import now_utc

log = get_logger(__name__)


def _dying(pod: pv.Pod) -> bool:
    return pv.is_deleting(pod) or pv.kube_phase(pod) == "Failed"


def sandbox_ending(old: pv.Pod | None, new: pv.Pod | None) -> tuple[pv.Pod, bool] | None:
    """The pod version to record the ended sandbox from and whether the pod is gone; None: nothing ended.

    A sandbox ends at the first of: its id leaves the pod, the pod is deleted, the pod starts being
    deleted or the node fails it. A pod first seen already dying (a replica starting up) ends its
    sandbox on sight.
    """
    if old is None:
        return (new, False) if new is not None and pv.sandbox_id(new) and _dying(new) else None
    sid = pv.sandbox_id(old)
    if not sid or _dying(old):
        return None
    if new is None:
        return old, True
    if pv.sandbox_id(new) != sid:
        return old, False
    return (new, False) if _dying(new) else None


def recycled_at(new: pv.Pod | None) -> str:
    """When the pod went back to idle (the completion stamp of its swap), or ``""``."""
    if new is None or pv.sandbox_phase(new) != v.SandboxPhase.IDLE.value:
        return ""
    state = read_state(new) or {}
    stamp = state.get("updateTimestamp")
    return stamp if isinstance(stamp, str) else ""


class HistoryFeed:
    """Pod informer handler that fills this replica's :class:`HistoryStore`."""

    def __init__(self, store: HistoryStore, now: Callable[[], datetime] = now_utc,
                 on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        """``on_record`` receives each new record (to be made durable); it must not block."""
        self.store = store
        self._now = now
        self._on_record = on_record

    def on_pod_event(self, event: str, old: pv.Pod | None, new: pv.Pod | None) -> None:
        ending = sandbox_ending(old, new)
        if ending is None:
            return
        pod, gone = ending
        sid = pv.sandbox_id(pod)
        if self.store.get(pv.namespace(pod), sid) is not None:
            return
        record = finished_record(pod, self._now(), gone=gone,
                                 recycled_at="" if new is None or new is pod else recycled_at(new))
        self.store.put(record)
        if self._on_record is not None:
            self._on_record(record)
        log.debug("sandbox finished", sandbox_id=sid, pod=pv.key(pod), status=record["status"],
                 failure=record.get("failureReason"))
