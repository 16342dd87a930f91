"""Finished-sandbox records as Kubernetes objects: naming, encoding, and what to write or delete.

A replica's :class:`~.history.HistoryStore` lives in memory, so a restarted or
newly started replica would answer 404 for a sandbox that ended a minute ago.
Each record is therefore also kept as one ConfigMap in the sandbox's namespace
(no CRD needed, every cluster and the embedded API server have ConfigMaps):
named after the sandbox id, labelled so one watch finds them all, holding the
record JSON, immutable (a record never changes once written), and carrying the
finish time in an annotation so the leader's TTL sweep can age them out.

Everything here is pure: the I/O lives in :mod:`.history_writer` (create) and
:mod:`.history_sync` (watch, repair, sweep).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.timeutil import parse_time

NAME_PREFIX = "sbh-"
DATA_KEY = "record"
HISTORY_SELECTOR = f"{v.LABEL_SANDBOX_HISTORY}=true"


def object_name(sandbox_id: str) -> str:
    """The ConfigMap name of ``sandbox_id``'s record (sandbox ids are DNS labels of at most 48 characters)."""
    return NAME_PREFIX + sandbox_id


def history_path(namespace: str | None = None, name: str | None = None) -> str:
    """ConfigMaps of one namespace (or of all), or one by name."""
    base = f"/api/v1/namespaces/{namespace}/configmaps" if namespace else "/api/v1/configmaps"
    return f"{base}/{quote(name, safe='')}" if name else base


def record_key(record: dict[str, Any]) -> str:
    """The informer key of the record's object: ``<namespace>/sbh-<sandbox id>``."""
    return f"{record.get('namespace', '')}/{object_name(record.get('sandboxId', ''))}"


def to_configmap(record: dict[str, Any]) -> dict[str, Any]:
    """The object holding ``record`` (which must carry ``sandboxId`` and ``namespace``)."""
    labels = {v.LABEL_SANDBOX_HISTORY: "true", v.LABEL_SANDBOX_ID: record["sandboxId"]}
    if record.get("poolName"):
        labels[v.LABEL_SANDBOX_POOL] = record["poolName"]
    annotations = {v.ANN_TERMINATED_AT: record["terminatedAt"]} if record.get("terminatedAt") else {}
    return {
        "apiVersion": "v1", "kind": "ConfigMap", "immutable": True,
        "metadata": {"name": object_name(record["sandboxId"]), "namespace": record["namespace"],
                     "labels": labels, "annotations": annotations},
        "data": {DATA_KEY: orjson.dumps(record).decode()},
    }


def from_configmap(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The record an object holds; None when it is not a well-formed record of the object it sits in
    (hand-made, truncated, or naming another sandbox or namespace than the object)."""
    meta = obj.get("metadata") or {}
    raw = (obj.get("data") or {}).get(DATA_KEY)
    if not isinstance(raw, str):
        return None
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("sandboxId"), str):
        return None
    if object_name(record["sandboxId"]) != meta.get("name") or record.get("namespace") != meta.get("namespace"):
        return None
    return record


def finished_at(obj: dict[str, Any]) -> datetime | None:
    """When the sandbox an object records ended: its annotation, else when the object was created."""
    meta = obj.get("metadata") or {}
    return parse_time((meta.get("annotations") or {}).get(v.ANN_TERMINATED_AT)) or parse_time(
        meta.get("creationTimestamp"))


def remaining_ttl(record: dict[str, Any], now: datetime, ttl_s: float) -> float:
    """Seconds ``record`` still has to live (≤ 0: expired); a record without an end time lives a full TTL."""
    ended = parse_time(record.get("terminatedAt"))
    return ttl_s if ended is None else ttl_s - (now - ended).total_seconds()


@dataclass(frozen=True)
class Removal:
    namespace: str
    name: str
    reason: str  # "expired" | "cap"


def sweep_plan(objects: Iterable[dict[str, Any]], now: datetime, ttl_s: float, max_records: int,
               limit: int) -> list[Removal]:
    """Objects to delete this pass, oldest first, at most ``limit``: every expired one (older than the
    TTL, or of unknown age), then the oldest beyond ``max_records`` — so the durable set, and each
    replica's watch cache of it, stays within the same cap as the in-memory store."""
    oldest = datetime.min.replace(tzinfo=now.tzinfo)
    aged = sorted(((finished_at(o) or oldest), (o.get("metadata") or {}).get("namespace", ""),
                   (o.get("metadata") or {}).get("name", "")) for o in objects)
    cutoff = now - timedelta(seconds=ttl_s)
    expired = [Removal(ns, name, "expired") for ended, ns, name in aged if ended <= cutoff]
    kept = aged[len(expired):]
    over = [Removal(ns, name, "cap") for _ended, ns, name in kept[:max(0, len(kept) - max_records)]]
    return (expired + over)[:limit]


def missing_records(records: Iterable[dict[str, Any]], stored: Callable[[str], bool], now: datetime, *,
                    ttl_s: float, grace_s: float, limit: int) -> list[dict[str, Any]]:
    """Records with no object yet although they ended more than ``grace_s`` ago (a write dropped, failed,
    or lost with a leader that died), still within their TTL; at most ``limit``, oldest first."""
    out: list[dict[str, Any]] = []
    for record in records:
        if not record.get("sandboxId") or not record.get("namespace") or stored(record_key(record)):
            continue
        left = remaining_ttl(record, now, ttl_s)
        if 0 < left <= ttl_s - grace_s:
            out.append(record)
    out.sort(key=lambda r: str(r.get("terminatedAt", "")))
    return out[:limit]
