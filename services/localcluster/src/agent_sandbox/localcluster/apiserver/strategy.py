"""Per-resource write rules: what a create or update may change, and the fields the server owns.

These are the registry "strategies" of kube-apiserver reduced to what clients of
this project notice: server-owned metadata (uid, creationTimestamp, generation),
status-subresource separation, generation bumps on spec changes, Pod defaults
and immutability, CRD schema pruning/defaulting/validation, name and label
validation. Pure functions on dicts; they raise :class:`StatusError`.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from . import schema as crschema
from .errors import StatusError, bad_request, cause, forbidden, invalid
from .resources import ResourceType, validate_crd
from .selectors import _check_key, _check_value

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SERVER_OWNED = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                 "selfLink")
# Pod spec fields an update may change (besides container images), as in kube-apiserver.
_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fail(rt: ResourceType, name: str, causes: list[dict[str, str]]) -> StatusError:
    return invalid(rt.kind, rt.group, name, causes)


def _check_name(rt: ResourceType, name: Any) -> list[dict[str, str]]:
    if not isinstance(name, str) or not name:
        return [cause("metadata.name", "Required value: name or generateName is required", "FieldValueRequired")]
    if rt.kind == "Namespace":
        if len(name) > 63 or not _LABEL.match(name):
            return [cause("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 label must consist of "
                                           "lower case alphanumeric characters or '-'")]
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        return [cause("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of "
                                       "lower case alphanumeric characters, '-' or '.'")]
    return []


def _check_metadata(rt: ResourceType, meta: dict[str, Any], old: dict[str, Any] | None = None
                    ) -> list[dict[str, str]]:
    """Validate name, labels, annotations, finalizers and owner references (only those changed vs ``old``)."""
    causes = _check_name(rt, meta.get("name")) if old is None else []
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is None or (old is not None and value == old.get(field)):
            continue
        if not isinstance(value, dict):
            causes.append(cause(f"metadata.{field}", "Invalid value: must be a map of string to string",
                                "FieldValueTypeInvalid"))
            continue
        before = old.get(field) if old is not None else None
        if not isinstance(before, dict):
            before = {}
        for key, val in value.items():
            if before.get(key) == val:
                continue  # validated when it was written
            if not isinstance(val, str):
                causes.append(cause(f"metadata.{field}", "Invalid value: must be a map of string to string",
                                    "FieldValueTypeInvalid"))
                break
            try:
                _check_key(key)
                if field == "labels":
                    _check_value(val)
            except ValueError as exc:
                causes.append(cause(f"metadata.{field}", f"Invalid value: {exc}"))
    finalizers = meta.get("finalizers")
    if old is not None and finalizers == old.get("finalizers"):
        finalizers = None
    if finalizers is not None and (not isinstance(finalizers, list) or
                                   not all(isinstance(f, str) and f for f in finalizers)):
        causes.append(cause("metadata.finalizers", "Invalid value: must be a list of strings", "FieldValueTypeInvalid"))
    owners = meta.get("ownerReferences")
    if owners is not None and (old is None or owners != old.get("ownerReferences")):
        if not isinstance(owners, list):
            causes.append(cause("metadata.ownerReferences", "Invalid value: must be a list", "FieldValueTypeInvalid"))
        else:
            for i, ref in enumerate(owners):
                if not isinstance(ref, dict) or not all(ref.get(k) for k in ("apiVersion", "kind", "name", "uid")):
                    causes.append(cause(f"metadata.ownerReferences[{i}]",
                                        "Required value: apiVersion, kind, name and uid are required",
                                        "FieldValueRequired"))
    return causes


def _pod_defaults(pod: dict[str, Any]) -> None:
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        return  # reported by _pod_causes
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for field in ("containers", "initContainers"):
        containers = spec.get(field)
        for container in containers if isinstance(containers, list) else []:
            if not isinstance(container, dict) or not isinstance(container.get("image", ""), str):
                continue
            image = container.get("image") or ""
            tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            container.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})


def _pod_causes(pod: dict[str, Any]) -> list[dict[str, str]]:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [cause("spec", "Required value", "FieldValueRequired")]
    causes = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [cause("spec.containers", "Required value", "FieldValueRequired")]
    if not isinstance(spec.get("initContainers") or [], list):
        causes.append(cause("spec.initContainers", "Invalid value: must be a list", "FieldValueTypeInvalid"))
        return causes
    for field in ("containers", "initContainers"):
        names: set[Any] = set()
        for i, container in enumerate(spec.get(field) or []):
            path = f"spec.{field}[{i}]"
            if not isinstance(container, dict):
                causes.append(cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid"))
                continue
            if not container.get("name") or not isinstance(container["name"], str):
                causes.append(cause(f"{path}.name", "Required value", "FieldValueRequired"))
            elif container["name"] in names:
                causes.append(cause(f"{path}.name", f"Duplicate value: {container['name']!r}", "FieldValueDuplicate"))
            else:
                names.add(container["name"])
            if not container.get("image") or not isinstance(container["image"], str):
                causes.append(cause(f"{path}.image", "Required value", "FieldValueRequired"))
    return causes


_MISSING = object()
_SPEC_COMPARED_APART = frozenset({*_POD_MUTABLE, "nodeName", "containers", "initContainers"})
_IMAGE = frozenset({"image"})


def _equal_except(a: dict[str, Any], b: dict[str, Any], skip: frozenset[str]) -> bool:
    """``a == b`` ignoring the keys in ``skip``, without copying either (shared values compare by identity)."""
    count = 0
    for key, value in a.items():
        if key in skip:
            continue
        count += 1
        other = b.get(key, _MISSING)
        if other is not value and other != value:
            return False
    return count == sum(1 for key in b if key not in skip)


def _only_mutable_changed(old_spec: dict[str, Any], new_spec: dict[str, Any]) -> bool:
    """True when the specs differ at most in the fields a pod update may change (container images included)."""
    if not _equal_except(old_spec, new_spec, _SPEC_COMPARED_APART):
        return False
    for field in ("containers", "initContainers"):
        before, after = old_spec.get(field), new_spec.get(field)
        if before is after:
            continue
        if not isinstance(before, list) or not isinstance(after, list):
            if before != after:
                return False
            continue
        if len(before) != len(after):
            return False
        for a, b in zip(before, after, strict=True):
            if isinstance(a, dict) and isinstance(b, dict):
                if not _equal_except(a, b, _IMAGE):
                    return False
            elif a != b:
                return False
    return True


def _pod_update_causes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, str]]:
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if old_spec == new_spec:
        return []
    causes = _pod_causes(new)
    if causes:
        return causes
    if not _only_mutable_changed(old_spec, new_spec):
        causes.append(cause("spec", "Forbidden: pod updates may not change fields other than "
                                    "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                                    "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                                    "tolerations), `spec.terminationGracePeriodSeconds`", "FieldValueForbidden"))
    old_node = old_spec.get("nodeName")
    if old_node and new_spec.get("nodeName") != old_node:
        causes.append(cause("spec.nodeName", "Forbidden: pod updates may not change spec.nodeName once set",
                            "FieldValueForbidden"))
    return causes


def _custom_resource(rt: ResourceType, obj: dict[str, Any], name: str) -> dict[str, Any]:
    if rt.schema:
        obj = crschema.prune_and_default(obj, rt.schema, top=True)
        causes = crschema.validate(obj, rt.schema, top=True)
        if causes:
            raise _fail(rt, name, causes)
    return obj


def _initial_status(rt: ResourceType, obj: dict[str, Any]) -> None:
    if rt.kind == "Pod" and not rt.group:
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif rt.kind == "Namespace" and not rt.group:
        obj["status"] = {"phase": "Active"}
    elif rt.kind == "Service" and not rt.group:
        obj["status"] = {"loadBalancer": {}}
    elif rt.kind == "CustomResourceDefinition":
        spec = obj.get("spec") or {}
        stamp = now()
        obj["status"] = {
            "acceptedNames": spec.get("names") or {},
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": stamp}
                for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                ("Established", "InitialNamesAccepted", "the initial names have been accepted"))
            ],
        }
    elif rt.status_subresource and rt.kind != "Node":
        obj.pop("status", None)


def prepare_create(rt: ResourceType, obj: Any, namespace: str | None) -> dict[str, Any]:
    """Validate and complete a new object; ``metadata.name`` must already be resolved."""
    if not isinstance(obj, dict):
        raise bad_request("the request body must be a JSON object")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    kind = obj.get("kind")
    if kind is not None and kind != rt.kind:
        raise bad_request(f"the kind of the provided object ({kind}) does not match the resource ({rt.kind})")
    if rt.namespaced:
        body_ns = meta.get("namespace")
        if body_ns and body_ns != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    name = meta.get("name") or ""
    causes = _check_metadata(rt, meta)
    if causes:
        raise _fail(rt, name, causes)
    obj["apiVersion"] = rt.api_version
    obj["kind"] = rt.kind
    for field in _SERVER_OWNED:
        meta.pop(field, None)
    meta.pop("managedFields", None)
    if not meta.get("finalizers"):
        meta.pop("finalizers", None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    meta["generation"] = 1
    _initial_status(rt, obj)
    if rt.custom:
        obj = _custom_resource(rt, obj, name)
    elif rt.kind == "Pod" and not rt.group:
        _pod_defaults(obj)
        causes = _pod_causes(obj)
        if causes:
            raise _fail(rt, name, causes)
    elif rt.kind == "CustomResourceDefinition":
        problems = validate_crd(obj)
        if problems:
            raise _fail(rt, name, [cause(f, m) for f, m in problems])
    return obj


def _content(obj: dict[str, Any], drop_status: bool) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "metadata" and not (drop_status and k == "status")}


def prepare_update(rt: ResourceType, old: dict[str, Any], new: Any, subresource: str | None) -> dict[str, Any]:
    """Merge an incoming full object into ``old`` under the rules of the main or ``status`` endpoint."""
    if not isinstance(new, dict):
        raise bad_request("the request body must be a JSON object")
    old_meta = old["metadata"]
    name = old_meta["name"]
    new_meta = new.get("metadata")
    if not isinstance(new_meta, dict):
        raise bad_request("metadata must be an object")
    if new_meta.get("name") not in (None, name):
        raise bad_request(f"the name of the object ({new_meta.get('name')}) does not match the name on the URL "
                          f"({name})")
    if rt.namespaced and new_meta.get("namespace") not in (None, old_meta.get("namespace")):
        raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
    if subresource == "status":
        result = dict(old)
        if "status" in new:
            result["status"] = new["status"]
        else:
            result.pop("status", None)
        result["metadata"] = dict(old_meta)
    else:
        result = dict(new)
        meta = dict(new_meta)
        for field in (*_SERVER_OWNED, "name", "namespace"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta.pop("managedFields", None)
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise forbidden(f'{rt.plural} "{name}" is being deleted: no new finalizers can be added if the '
                                "object is being deleted")
        result["metadata"] = meta
        if rt.status_subresource:
            if "status" in old:
                result["status"] = old["status"]
            else:
                result.pop("status", None)
        causes = _check_metadata(rt, meta, old_meta)
        if causes:
            raise _fail(rt, name, causes)
    result["apiVersion"] = old.get("apiVersion", rt.api_version)
    result["kind"] = rt.kind
    if rt.custom:
        result = _custom_resource(rt, result, name)
    elif rt.kind == "Pod" and not rt.group and subresource is None:
        causes = _pod_update_causes(old, result)
        if causes:
            raise _fail(rt, name, causes)
    elif rt.kind == "CustomResourceDefinition" and subresource is None:
        problems = validate_crd(result)
        if problems:
            raise _fail(rt, name, [cause(f, m) for f, m in problems])
        _initial_status(rt, result)
    meta = result["metadata"]
    if _content(old, rt.status_subresource) != _content(result, rt.status_subresource):
        meta["generation"] = int(old_meta.get("generation", 1)) + 1
    return result


def get_path(obj: Any, path: str) -> Any:
    """Value at a ``.a.b`` path (as used by scale subresource paths), or None."""
    cur = obj
    for part in path.strip(".").split("."):
        if not part:
            continue
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = [p for p in path.strip(".").split(".") if p]
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value
