"""``meta.k8s.io/v1`` Table rendering, which is how ``kubectl get`` gets its columns.

Pods print NAME READY STATUS RESTARTS AGE (IP and NODE at wide priority),
custom resources print the CRD's ``additionalPrinterColumns`` (JSONPath), and
everything else NAME AGE — the same columns kube-apiserver would send.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .resources import ResourceType

TABLE_ACCEPT_MARK = "as=Table"
_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")

_NAME_COL = {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a "
             "namespace.", "priority": 0}
_AGE_COL = {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp "
            "representing the server time when this object was created.", "priority": 0}


def wants_table(accept: str) -> bool:
    """True when the client's preferred representation is a Table (kubectl get)."""
    first = accept.split(",", 1)[0]
    return TABLE_ACCEPT_MARK in first and "g=meta.k8s.io" in first


def jsonpath(obj: Any, path: str) -> Any:
    """Evaluate the simple JSONPath subset printer columns use: ``.a.b``, ``[0]``, ``['x/y']``."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    path = path.lstrip("$")
    cur = obj
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            return None
        pos = m.end()
        if m.group(2) is not None:
            idx = int(m.group(2))
            cur = cur[idx] if isinstance(cur, list) and idx < len(cur) else None
        else:
            key = next(g for g in (m.group(1), m.group(3), m.group(4)) if g is not None)
            cur = cur.get(key) if isinstance(cur, dict) else None
        if cur is None:
            return None
    return cur


def human_age(timestamp: str | None, now: datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        rest = minutes % 60
        return f"{hours}h{rest}m" if hours < 8 and rest else f"{hours}h"
    days = hours // 24
    return f"{days}d{hours % 24}h" if days < 8 and hours % 24 else f"{days}d"


def _pod_status(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            reason = state["terminated"].get("reason") or "Completed"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount") or 0) for cs in statuses)
    total = len(spec.get("containers") or [])
    return [pod["metadata"]["name"], f"{ready}/{total}", _pod_status(pod), restarts,
            human_age(pod["metadata"].get("creationTimestamp")), status.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>"]


_POD_COLS = [
    _NAME_COL,
    {"name": "Ready", "type": "string", "format": "", "description": "The aggregate readiness state of this pod "
     "for accepting traffic.", "priority": 0},
    {"name": "Status", "type": "string", "format": "", "description": "The aggregate status of the containers in "
     "this pod.", "priority": 0},
    {"name": "Restarts", "type": "string", "format": "", "description": "The number of times the containers in "
     "this pod have been restarted.", "priority": 0},
    _AGE_COL,
    {"name": "IP", "type": "string", "format": "", "description": "IP address allocated to the pod.",
     "priority": 1},
    {"name": "Node", "type": "string", "format": "", "description": "Name of the node this pod is bound to.",
     "priority": 1},
]


def columns(rt: ResourceType) -> list[dict[str, Any]]:
    if rt.kind == "Pod" and not rt.group:
        return _POD_COLS
    if rt.custom and rt.printer_columns:
        cols = [_NAME_COL]
        for col in rt.printer_columns:
            cols.append({"name": col.get("name", ""), "type": col.get("type", "string"),
                         "format": col.get("format", ""), "description": col.get("description", ""),
                         "priority": int(col.get("priority", 0))})
        return cols
    return [_NAME_COL, _AGE_COL]


def _cell(value: Any, col_type: str) -> Any:
    if value is None:
        return None
    if col_type == "date":
        return human_age(value) if isinstance(value, str) else value
    if isinstance(value, dict | list):
        return str(value)
    return value


def row_cells(rt: ResourceType, obj: dict[str, Any]) -> list[Any]:
    if rt.kind == "Pod" and not rt.group:
        return _pod_row(obj)
    if rt.custom and rt.printer_columns:
        cells = [obj["metadata"]["name"]]
        for col in rt.printer_columns:
            cells.append(_cell(jsonpath(obj, col.get("jsonPath", "")), col.get("type", "string")))
        return cells
    return [obj["metadata"]["name"], human_age(obj["metadata"].get("creationTimestamp"))]


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(rt: ResourceType, objs: list[dict[str, Any]], *, include: str = "Metadata", headers: bool = True,
          list_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": row_cells(rt, obj)}
        embedded = _row_object(obj, include)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": columns(rt) if headers else [],
        "rows": rows,
    }
