"""Writes of in-place transitions: trigger (claim/release) and completion.

``trigger_update`` sends the patch built by :mod:`.inplace` from the pod as
the caller read it (``start_trigger``: sent before the caller yields). With
``disable_retry`` (the claim path) a 409 means "someone else won" and is
returned to the scheduler; otherwise the pod is re-read and the transition
retried a few times. ``mark_completed`` always
retries, re-reading the pod, so the idle-side cleanup is never lost to a race.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.kube.client import MERGE_PATCH, KubeClient, KubeError, pods_path
from agent_sandbox.operator.lifecycle import inplace
from agent_sandbox.operator.timeutil import now_utc

MAX_ATTEMPTS = 5


async def trigger_update(
    client: KubeClient,
    pod: pv.Pod,
    opts: inplace.UpdateOptions,
    *,
    disable_retry: bool = False,
    now: Callable[[], datetime] = now_utc,
) -> tuple[pv.Pod, bool]:
    """Apply ``opts``; returns the written pod and whether it completed immediately (fast path)."""
    current = pod
    for attempt in range(1 if disable_retry else MAX_ATTEMPTS):
        patch, done = inplace.build_trigger_patch(current, opts, now())
        try:
            written = await client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), patch)
            return written, done
        except KubeError as exc:
            if not exc.conflict or disable_retry or attempt == MAX_ATTEMPTS - 1:
                raise
            current = await client.get(pods_path(pv.namespace(pod), pv.name(pod)))
    raise AssertionError("unreachable")


def start_trigger(
    client: KubeClient,
    pod: pv.Pod,
    opts: inplace.UpdateOptions,
    *,
    now: Callable[[], datetime] = now_utc,
) -> Awaitable[pv.Pod] | None:
    """The claim path's :func:`trigger_update` (no retry), its patch sent before this returns
    (:meth:`KubeClient.send_now`); awaiting the result gives the written pod or raises as the write
    would. ``None`` when it cannot leave at once; errors building the patch propagate."""
    patch, _done = inplace.build_trigger_patch(pod, opts, now())
    return client.send_now("PATCH", pods_path(pv.namespace(pod), pv.name(pod)), body=patch,
                           content_type=MERGE_PATCH)


async def mark_completed(
    client: KubeClient,
    pod: pv.Pod,
    idle_labels: dict[str, str],
    extra_remove_annotations: tuple[str, ...] = (),
    now: Callable[[], datetime] = now_utc,
) -> pv.Pod | None:
    """Finish a Starting→Running or Stopping→Idle transition; ``None`` when nothing was left to do."""
    current: dict[str, Any] = pod
    for attempt in range(MAX_ATTEMPTS):
        patch = inplace.build_complete_patch(current, now(), idle_labels, extra_remove_annotations)
        if patch is None or not inplace.update_complete(current):
            return None
        try:
            return await client.merge_patch(pods_path(pv.namespace(pod), pv.name(pod)), patch)
        except KubeError as exc:
            if not exc.conflict or attempt == MAX_ATTEMPTS - 1:
                raise
            current = await client.get(pods_path(pv.namespace(pod), pv.name(pod)))
    return None
