"""The four PATCH flavours Kubernetes accepts, as pure functions on dicts.

* ``application/merge-patch+json`` — RFC 7386.
* ``application/json-patch+json`` — RFC 6902 via the ``jsonpatch`` library.
* ``application/strategic-merge-patch+json`` — merge semantics, plus lists of
  named items (containers, initContainers, volumes, env, ports, ...) merged by
  ``name`` and the ``$patch: delete|replace`` directives. That covers the fields
  our components patch; other lists are replaced as in a merge patch.
* ``application/apply-patch+yaml`` — server-side apply approximated as a
  strategic merge of the applied configuration (no managed-fields tracking).

Each function takes the current object and returns the patched one, raising
:class:`PatchError` on a bad patch. The current object is never modified: merge
and strategic patches copy only the dicts and lists on the paths they change and
share every other subtree with it (the store's objects are immutable, so a write
need not deep-copy a whole Pod to change a label); a JSON patch works on a copy.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import orjson
import yaml

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE, JSON_PATCH, STRATEGIC, APPLY)

# List fields merged by key in strategic merge patches (key is "name" for all we use).
_MERGE_BY_NAME = frozenset({
    "containers", "initContainers", "ephemeralContainers", "volumes", "env", "ports", "volumeMounts",
    "volumeDevices", "imagePullSecrets", "hostAliases", "conditions", "resourceClaims",
})
_MERGE_KEYS = {"conditions": "type", "ports": "containerPort", "hostAliases": "ip", "volumeMounts": "mountPath",
               "volumeDevices": "devicePath"}


class PatchError(ValueError):
    """The patch document is malformed or cannot be applied (→ 400/422)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def parse_body(content_type: str, body: bytes) -> Any:
    try:
        if content_type == APPLY:
            return yaml.safe_load(body.decode("utf-8")) if body else None
        return orjson.loads(body)
    except (orjson.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PatchError(f"error decoding patch: {exc}", 400) from exc


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = merge_patch(result.get(key), value)
        else:
            result[key] = value  # a leaf or a list replaces what was there
    return result


def json_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, list):
        raise PatchError("json patch must be a list of operations")
    try:
        result = jsonpatch.JsonPatch(patch).apply(orjson.loads(orjson.dumps(target)), in_place=True)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, TypeError, IndexError) as exc:
        raise PatchError(f"the server rejected our request due to an error in our request: {exc}") from exc
    if not isinstance(result, dict):
        raise PatchError("json patch must leave an object")
    return result


def _merge_key(field: str) -> str:
    return _MERGE_KEYS.get(field, "name")


def _strategic_list(field: str, target: Any, patch: list[Any]) -> list[Any]:
    key = _merge_key(field)
    if field not in _MERGE_BY_NAME or not all(isinstance(p, dict) for p in patch):
        return [strategic_merge(None, p) if isinstance(p, dict) else p for p in patch]
    if any(p.get("$patch") == "replace" for p in patch):
        return [strategic_merge(None, p) for p in patch if p.get("$patch") != "replace"]
    result = list(target) if isinstance(target, list) else []
    index = {item.get(key): i for i, item in enumerate(result) if isinstance(item, dict)}
    removed: set[Any] = set()
    for item in patch:
        if key not in item:
            raise PatchError(f"strategic merge patch: item of {field} has no merge key {key!r}")
        name = item[key]
        if item.get("$patch") == "delete":
            removed.add(name)
            continue
        if name in index:
            result[index[name]] = strategic_merge(result[index[name]], item)
        else:
            index[name] = len(result)
            result.append(strategic_merge(None, item))
    return [r for r in result if not (isinstance(r, dict) and r.get(key) in removed)]


def strategic_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _strategic_list(key, result.get(key), value)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    return result


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``target`` with ``patch`` of ``content_type`` applied (``target`` itself is left as it was)."""
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise PatchError(f"patch body must be an object for {content_type}", 400)
    if content_type == MERGE:
        return merge_patch(target, patch)
    return strategic_merge(target, patch)
