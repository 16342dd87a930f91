"""Service-layer sandbox records and pools rendered as E2B bodies (``ListedSandbox``, ``SandboxDetail``,
``Template``). Pure functions: the timing rules are what SDK users notice.

``endAt`` is the real deadline of the sandbox: its idle timeout counted from the last recorded
activity (or the claim), so reading it twice gives the same answer (the reference implementation
recomputed it from "now" on every read). A sandbox without an idle timeout never expires; it reports
a deadline :data:`NO_DEADLINE` after its start, since the SDK requires a timestamp.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.e2b.models import ListedSandbox, SandboxDetail, Template
from agent_sandbox.operator.quantities import InvalidQuantity, parse_quantity
from agent_sandbox.operator.timeutil import parse_time

NO_DEADLINE = timedelta(days=3650)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIB = 1 << 20
META_NODE = "agentsandbox.io/nodeName"
META_CONTAINER = "agentsandbox.io/containerId"


def _resource_total(spec: dict[str, Any], resource: str) -> Decimal:
    total = Decimal(0)
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        resources = container.get("resources") or {} if isinstance(container, dict) else {}
        value = (resources.get("requests") or {}).get(resource) or (resources.get("limits") or {}).get(resource)
        if value is not None:
            try:
                total += parse_quantity(value)
            except InvalidQuantity:
                continue
    return total


def cpu_and_memory(pool: dict[str, Any] | None) -> tuple[int, int]:
    """(cpuCount, memoryMB) of a pool's pod template: requests, falling back to limits."""
    spec = (pool or {}).get("spec") or {}
    return round(_resource_total(spec, "cpu")), int(_resource_total(spec, "memory") / MIB)


def started_at(record: dict[str, Any]) -> datetime:
    return parse_time(record.get("startedAt")) or parse_time(record.get("claimedAt")) or EPOCH


def deadline(record: dict[str, Any], pod: pv.Pod | None) -> datetime | None:
    """When the idle timeout ends the sandbox; ``None`` when it has no timeout."""
    if pod is None:
        return None
    idle = pv.int_annotation(pod, v.ANN_IDLE_TIMEOUT)
    if not idle or idle <= 0:
        return None
    base = pv.time_annotation(pod, v.ANN_LAST_ACTIVE) or parse_time(record.get("claimedAt")) or started_at(record)
    return base + timedelta(seconds=idle)


def _listed_fields(record: dict[str, Any], pod: pv.Pod | None, pool: dict[str, Any] | None,
                   envd_version: str) -> dict[str, Any]:
    cpu, memory = cpu_and_memory(pool)
    start = started_at(record)
    metadata = {k: str(val) for k, val in (record.get("metadata") or {}).items()}
    return {
        "templateID": record.get("poolName", ""), "sandboxID": record.get("sandboxId", ""),
        "clientID": record.get("namespace", ""), "startedAt": start,
        "endAt": deadline(record, pod) or start + NO_DEADLINE, "cpuCount": cpu, "memoryMB": memory,
        "metadata": metadata, "envdVersion": envd_version, "state": "running",
    }


def listed_sandbox(record: dict[str, Any], pod: pv.Pod | None, pool: dict[str, Any] | None,
                   envd_version: str) -> ListedSandbox:
    return ListedSandbox(**_listed_fields(record, pod, pool, envd_version))


def sandbox_detail(record: dict[str, Any], pod: pv.Pod | None, pool: dict[str, Any] | None, envd_version: str,
                   *, token: str | None, domain: str | None) -> SandboxDetail:
    fields = _listed_fields(record, pod, pool, envd_version)
    if record.get("nodeName"):
        fields["metadata"][META_NODE] = record["nodeName"]
    if record.get("containerId"):
        fields["metadata"][META_CONTAINER] = record["containerId"]
    return SandboxDetail(**fields, envdAccessToken=token, domain=domain)


def template_view(pool: dict[str, Any], running: int, envd_version: str) -> Template:
    meta = pool.get("metadata") or {}
    cpu, memory = cpu_and_memory(pool)
    created = parse_time(meta.get("creationTimestamp"))
    return Template(templateID=meta.get("name", ""), buildID=meta.get("uid") or meta.get("name", ""),
                    cpuCount=cpu, memoryMB=memory, spawnCount=running, names=[meta.get("name", "")],
                    aliases=[meta.get("name", "")], envdVersion=envd_version, createdAt=created, updatedAt=created)
