"""Which cluster a request names (behaviour.md §20.2); pure functions, no I/O.

A request belongs to another cluster when it names one: the sandbox id in a sandbox route (ids carry
their cluster, ``<cluster>-<26 chars>``), or on create the ``cluster::`` prefix of the native
``poolName`` or the E2B ``templateID``. Anything that does not parse names no cluster and is left to
the local handlers, which give the precise 400/404.
"""

from __future__ import annotations

import orjson

from agent_sandbox.common.ids import InvalidSandboxId, parse_sandbox_id
from agent_sandbox.operator.crosscluster.directory import Api

#: Path prefixes (as segment lists) under which the next segment is a sandbox id.
_SANDBOX_PREFIXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "native": (("v1", "sandboxes"),),
    "e2b": (("sandboxes",), ("v2", "sandboxes")),
}
#: Create routes and the body field holding ``[cluster::]name``.
_CREATE_FIELD: dict[str, str] = {"native": "poolName", "e2b": "templateID"}


def _cluster_of_id(value: str) -> str | None:
    try:
        return parse_sandbox_id(value).cluster_id
    except InvalidSandboxId:
        return None


def _cluster_prefix(reference: object) -> str | None:
    if not isinstance(reference, str):
        return None
    base = reference.partition("//")[0]
    cluster, sep, _ = base.partition("::")
    if not sep or not cluster.strip():
        return None
    return cluster.strip()


def is_create(method: str, path: str, api: Api) -> bool:
    segments = tuple(s for s in path.split("/") if s)
    return method == "POST" and segments in _SANDBOX_PREFIXES[api]


def named_cluster(method: str, path: str, body: bytes, api: Api) -> str | None:
    """The cluster id the request names, if any (it may be the local one)."""
    segments = tuple(s for s in path.split("/") if s)
    for prefix in _SANDBOX_PREFIXES[api]:
        if len(segments) > len(prefix) and segments[:len(prefix)] == prefix:
            return _cluster_of_id(segments[len(prefix)])
    if is_create(method, path, api) and body:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return _cluster_prefix(doc.get(_CREATE_FIELD[api])) if isinstance(doc, dict) else None
    return None
