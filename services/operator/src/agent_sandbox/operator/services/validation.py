"""Validation of pool specs and claim images (behaviour §4.1, §8.1 step 2). Pure.

The idle image must differ from the workload image: completion detection of
an in-place swap compares images, so a pool whose idle and workload images
are the same could never tell a claim's swap from no swap.
"""

from __future__ import annotations

from typing import Any

from agent_sandbox.operator.images import same_image
from agent_sandbox.operator.services.errors import InvalidRequest
from agent_sandbox.operator.services.models import MAX_POOL_REPLICAS


def template_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((spec.get("template") or {}).get("spec") or {}).get("containers") or [])


def validate_pool_spec(spec: dict[str, Any]) -> None:
    containers = template_containers(spec)
    if not containers:
        raise InvalidRequest("the pod template needs at least one container")
    if any(not isinstance(c, dict) or not c.get("name") or not c.get("image") for c in containers):
        raise InvalidRequest("every template container needs a name and an image")
    idle = spec.get("idleImage")
    if not idle:
        raise InvalidRequest("idleImage is required")
    if same_image(idle, containers[0]["image"]):
        raise InvalidRequest("idleImage must differ from the image of the first container")
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or not 0 <= replicas <= MAX_POOL_REPLICAS:
        raise InvalidRequest(f"replicas must be an integer between 0 and {MAX_POOL_REPLICAS}")
    auto = spec.get("autoscaling") or {}
    lo, hi = spec.get("minReplicas"), spec.get("maxReplicas")
    if auto.get("enabled"):
        if lo is None or hi is None:
            raise InvalidRequest("autoscaling needs minReplicas and maxReplicas")
        if not 0 <= lo <= hi:
            raise InvalidRequest("autoscaling needs 0 <= minReplicas <= maxReplicas")
        if not lo <= replicas <= hi:
            raise InvalidRequest(f"replicas must lie within [{lo}, {hi}] while autoscaling is enabled")
    for rt in spec.get("runtimes") or []:
        port = rt.get("port") if isinstance(rt, dict) else None
        if not isinstance(port, int) or not 1 <= port <= 65535 or not rt.get("name"):
            raise InvalidRequest("every runtime needs a name and a port between 1 and 65535")


def resolve_images(spec: dict[str, Any], image: str | None, container_images: dict[str, str]) -> dict[str, str]:
    """Target images of a claim: container[0] gets ``image``, per-container overrides win, the rest keep theirs."""
    containers = template_containers(spec)
    if not containers:
        raise InvalidRequest("the pool has no containers")
    names = [c.get("name", "") for c in containers]
    unknown = sorted(set(container_images) - set(names))
    if unknown:
        raise InvalidRequest(f"unknown container(s) {', '.join(unknown)}; the pool has {', '.join(names)}")
    for ref in [image, *container_images.values()]:
        if ref is not None and (not ref.strip() or any(ch.isspace() for ch in ref)):
            raise InvalidRequest(f"invalid image reference {ref!r}")
    targets = {c.get("name", ""): c.get("image", "") for c in containers}
    if image:
        targets[names[0]] = image
    targets.update(container_images)
    idle = spec.get("idleImage")
    if not idle:
        raise InvalidRequest("the pool has no idleImage")
    if same_image(idle, targets[names[0]]):
        raise InvalidRequest("the requested image equals the pool's idle image")
    return targets
