"""In-place image update: the patches and the completion rules (behaviour §7).

A claim or a release changes ``spec.containers[i].image`` of a live pod — the
only mutable container field — and records enough state in the
``inplace-update-state`` annotation to tell when the kubelet has finished.
A swapped container is done when:

* a **new** container (containerID differs from the one recorded at swap
  start) runs the target image (normalised reference) and is ready. Matching
  by image name — not by imageID against a baseline — keeps digest-identical
  images from deadlocking (openkruise/kruise#1493); requiring a new
  containerID keeps a status that still shows the old container (being
  stopped, or a stale write) from finishing the swap early. Both halves are
  needed: the old container keeps reporting ``running`` while it is being
  stopped, and a short-lived intermediate container (the kubelet caught up
  with two spec changes) has a new ID but the wrong image;
* or the recorded container itself already runs the target image, is ready
  and the node has acted on the new spec (``status.observedGeneration``)
  without restarting it, so there is nothing to swap. This is what keeps a
  rollback after a pull failure (openkruise/agents#773) from deadlocking.

``status.observedGeneration`` (reported by our nodes and by kubelets with pod
generation tracking) is compared with the generation the swap's spec write
produced: a status computed before the node saw the change never completes a
swap. With it, a new ready container completes the swap under any image name
(a runtime may report a digest-equal image under another tag).

No state annotation means complete. A claim only takes a pod whose containers
all run their spec images (the previous recycle has settled).

Everything here is pure: it returns JSON merge patches that carry the read
``metadata.resourceVersion``, so the API server rejects a write based on a
stale read with 409 — the optimistic claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.images import same_image
from agent_sandbox.operator.timeutil import format_time, parse_time

STATE_STARTING = "starting"
STATE_STOPPING = "stopping"
STATE_COMPLETED = "completed"


class UnexpectedPodPhase(Exception):
    """The pod's phase label is not the one the caller read (someone else moved it)."""


class PodNotReady(Exception):
    """A claim needs a running, ready pod whose containers run their spec images."""


@dataclass(slots=True)
class UpdateOptions:
    """One in-place transition: towards ``running`` (claim) or ``idle`` (release)."""

    target_phase: str
    images: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    remove_labels: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    remove_annotations: list[str] = field(default_factory=list)
    expected_phase: str | None = None


def read_state(pod: pv.Pod) -> dict[str, Any] | None:
    state = pv.json_annotation(pod, v.ANN_INPLACE_UPDATE_STATE, None)
    return state if isinstance(state, dict) else None


def _dump(value: Any) -> str:
    return orjson.dumps(value).decode()


def _metadata_patch(pod: pv.Pod, opts: UpdateOptions, phase_label: str) -> dict[str, Any]:
    labels: dict[str, str | None] = {k: None for k in opts.remove_labels}
    labels.update(opts.labels)
    labels[v.LABEL_SANDBOX_PHASE] = phase_label
    annotations: dict[str, str | None] = {k: None for k in opts.remove_annotations}
    annotations.update(opts.annotations)
    return {"resourceVersion": pv.resource_version(pod), "labels": labels, "annotations": annotations}


def _stable_statuses(pod: pv.Pod, names: list[str]) -> dict[str, dict[str, Any]]:
    statuses = pv.container_statuses(pod)
    return {
        n: {"containerID": statuses.get(n, {}).get("containerID", ""),
            "restartCount": statuses.get(n, {}).get("restartCount", 0)}
        for n in names
    }


def transition_phase(target_phase: str) -> str:
    return STATE_STARTING if target_phase == v.SandboxPhase.RUNNING else STATE_STOPPING


def build_trigger_patch(pod: pv.Pod, opts: UpdateOptions, now: datetime) -> tuple[dict[str, Any], bool]:
    """The merge patch for ``opts`` and whether it completes at once (same-image fast path)."""
    current_phase = pv.sandbox_phase(pod)
    if opts.expected_phase is not None and current_phase != opts.expected_phase:
        raise UnexpectedPodPhase(f"pod {pv.key(pod)} is {current_phase or 'unlabelled'}, "
                                 f"expected {opts.expected_phase}")
    current = pv.container_images(pod)
    unknown = sorted(set(opts.images) - set(current))
    if unknown:
        raise ValueError(f"pod {pv.key(pod)} has no container named {', '.join(unknown)}")
    changed = {n: img for n, img in opts.images.items() if not same_image(current[n], img)}
    target_images = {n: opts.images.get(n, img) for n, img in current.items()}
    first = pv.containers(pod)[0].get("name", "") if current else ""
    stamp = format_time(now)
    state: dict[str, Any] = {
        "targetImage": target_images.get(first, ""),
        "targetImages": target_images,
        "targetPodPhase": opts.target_phase,
        "updateTimestamp": stamp,
    }
    starting = opts.target_phase == v.SandboxPhase.RUNNING
    if starting and not settled(pod):
        raise PodNotReady(f"pod {pv.key(pod)} is not running and ready on its spec images")
    if starting and not changed:
        state.update(phase=STATE_COMPLETED, lastContainerStatuses={},
                     stableContainerStatuses=_stable_statuses(pod, list(opts.images) or [first]))
        meta = _metadata_patch(pod, opts, v.SandboxPhase.RUNNING.value)
        meta["annotations"].update({v.ANN_STARTED_AT: stamp, v.ANN_LAST_ACTIVE: stamp,
                                    v.ANN_INPLACE_UPDATE_STATE: _dump(state)})
        return {"metadata": meta}, True
    statuses = pv.container_statuses(pod)
    state.update(
        phase=transition_phase(opts.target_phase),
        lastContainerStatuses={
            n: {"imageID": statuses.get(n, {}).get("imageID", ""),
                "containerID": statuses.get(n, {}).get("containerID", "")}
            for n in changed
        },
        stableContainerStatuses={},
    )
    generation = pv.meta(pod).get("generation")
    if changed and isinstance(generation, int):
        state["specGeneration"] = generation + 1  # the image write bumps it by exactly one (CAS on the RV)
    meta = _metadata_patch(pod, opts, state["phase"])
    meta["annotations"][v.ANN_INPLACE_UPDATE_STATE] = _dump(state)
    patch: dict[str, Any] = {"metadata": meta}
    if changed:
        patch["spec"] = {"containers": [
            {**c, "image": changed[c.get("name", "")]} if c.get("name", "") in changed else c
            for c in pv.containers(pod)
        ]}
    return patch, False


def settled(pod: pv.Pod) -> bool:
    """Running and ready, every container running its spec image (no swap or restart left in flight)."""
    if pv.kube_phase(pod) != "Running" or not pv.pod_ready(pod):
        return False
    statuses = pv.container_statuses(pod)
    for name, image in pv.container_images(pod).items():
        status = statuses.get(name)
        if status is None or not _serving(status) or not same_image(status.get("image"), image):
            return False
    return True


def _serving(status: dict[str, Any]) -> bool:
    """A container that runs and is not being taken down (``ready`` false while the kubelet stops it)."""
    return pv.is_running(status) and bool(status.get("containerID")) and status.get("ready") is not False


def _node_observed(pod: pv.Pod, state: dict[str, Any]) -> bool | None:
    """Whether the node has acted on the swap's spec (``status.observedGeneration``); None: not reported."""
    wanted = state.get("specGeneration")
    observed = (pod.get("status") or {}).get("observedGeneration")
    if not isinstance(wanted, int) or not isinstance(observed, int):
        return None
    return observed >= wanted


def container_swapped(status: dict[str, Any] | None, last: dict[str, Any], target: str | None,
                      node_observed: bool | None) -> bool:
    """One swapped container is finished (see the module docstring for why each condition is needed).

    ``node_observed`` is None for nodes that do not report ``observedGeneration``: then only the
    container's identity, image and readiness decide.
    """
    if status is None or not _serving(status) or node_observed is False:
        return False
    on_target = same_image(status.get("image"), target)
    if status.get("containerID") != (last.get("containerID") or ""):
        # A new container. Under another name only when the node confirms it was started for this
        # spec (a runtime may report a digest-equal image under another tag); an intermediate
        # container of an older spec is never ready after the node has seen the new one.
        return on_target or node_observed is True
    # The container of the swap's start already runs the target: nothing to swap. Before the node
    # has seen the new spec this is a stale status, caught above where the node reports generations.
    return on_target


def update_complete(pod: pv.Pod) -> bool:
    """True when the kubelet has finished the swap recorded in the state annotation."""
    state = read_state(pod)
    if state is None or state.get("phase") == STATE_COMPLETED:
        return True
    targets = state.get("targetImages") or {}
    spec_images = pv.container_images(pod)
    for name, image in targets.items():
        if name in spec_images and not same_image(spec_images[name], image):
            return False
    statuses = pv.container_statuses(pod)
    observed = _node_observed(pod, state)
    return all(container_swapped(statuses.get(name), last or {}, targets.get(name), observed)
               for name, last in (state.get("lastContainerStatuses") or {}).items())


def image_pull_failure(pod: pv.Pod) -> tuple[str, str] | None:
    """``(reason, message)`` when a container being swapped cannot pull its target image."""
    state = read_state(pod)
    if state is None or state.get("phase") == STATE_COMPLETED:
        return None
    statuses = pv.container_statuses(pod)
    for name in state.get("lastContainerStatuses") or {}:
        status = statuses.get(name) or {}
        reason = pv.waiting_reason(status)
        if reason in pv.IMAGE_PULL_FAILURES:
            return reason, pv.waiting_message(status) or f"container {name} cannot pull its image"
    return None


def has_unexpected_restart(pod: pv.Pod) -> tuple[str, dict[str, Any]] | None:
    """The targeted container of a running sandbox that was restarted (crash, OOM), with its status."""
    state = read_state(pod)
    if state is None or state.get("phase") != STATE_COMPLETED or state.get("targetPodPhase") != "running":
        return None
    statuses = pv.container_statuses(pod)
    for name, stable in (state.get("stableContainerStatuses") or {}).items():
        stable_id = stable.get("containerID", "")
        status = statuses.get(name)
        if not stable_id or status is None:
            continue
        if status.get("containerID", "") != stable_id:
            return name, status
    return None


def build_complete_patch(
    pod: pv.Pod,
    now: datetime,
    idle_labels: dict[str, str] | None = None,
    extra_remove_annotations: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """Patch moving a finished Starting pod to Running or a finished Stopping pod to Idle (None: nothing to do).

    Going idle clears the sandbox-id label and every sandbox annotation in the
    same write, so a new claim can never see half of the previous tenant.
    ``idle_labels`` restores pool-level values of caller labels (team/user).
    """
    state = read_state(pod) or {}
    phase = pv.sandbox_phase(pod)
    if phase not in (STATE_STARTING, STATE_STOPPING) or state.get("phase") == STATE_COMPLETED:
        return None
    target = state.get("targetPodPhase") or (
        v.SandboxPhase.RUNNING.value if phase == STATE_STARTING else v.SandboxPhase.IDLE.value)
    stamp = format_time(now)
    done = {**state, "phase": STATE_COMPLETED, "lastContainerStatuses": {}, "updateTimestamp": stamp}
    labels: dict[str, str | None] = {v.LABEL_SANDBOX_PHASE: target}
    annotations: dict[str, str | None] = {}
    if target == v.SandboxPhase.RUNNING:
        done["stableContainerStatuses"] = _stable_statuses(pod, list(state.get("targetImages") or {}))
        annotations.update({v.ANN_STARTED_AT: stamp, v.ANN_LAST_ACTIVE: stamp})
    else:
        done["stableContainerStatuses"] = {}
        for key in (v.LABEL_SANDBOX_ID, v.LABEL_MANAGED_BY, v.LABEL_TEAM, v.LABEL_USER):
            labels[key] = None
        labels.update(idle_labels or {})
        for key in (*v.SANDBOX_ANNOTATIONS, *extra_remove_annotations):
            if key in pv.annotations(pod):
                annotations[key] = None
    annotations[v.ANN_INPLACE_UPDATE_STATE] = _dump(done)
    return {"metadata": {"resourceVersion": pv.resource_version(pod), "labels": labels,
                         "annotations": annotations}}


def idle_since(pod: pv.Pod) -> datetime | None:
    """When an idle pod became claimable: it is not idle "unused" while still pulling its image."""
    candidates = [t for t in (phase_since(pod), pv.ready_since(pod)) if t is not None]
    return max(candidates) if candidates else None


def phase_since(pod: pv.Pod) -> datetime | None:
    """When the pod entered its current phase (state timestamp, else creation time)."""
    state = read_state(pod)
    stamp = parse_time(state.get("updateTimestamp")) if state else None
    return stamp or pv.created_at(pod)
