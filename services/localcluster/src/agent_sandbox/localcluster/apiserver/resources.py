"""Resource types the server knows: the built-in kinds and those defined by CRDs.

A :class:`ResourceType` carries everything discovery, routing, validation and
table printing need about one resource. Built-ins are declared here; custom
resources are derived from CustomResourceDefinition objects by
:func:`types_from_crd`, one type per served version, all sharing one storage key
(``plural.group``) because the server keeps a single stored version (no
conversion, as with ``conversion.strategy: None``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    categories: tuple[str, ...] = ()
    custom: bool = False
    # Extra field-selector labels beyond metadata.name / metadata.namespace.
    field_labels: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Storage key shared by every served version of the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def _core(plural: str, singular: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    return ResourceType(group="", version="v1", plural=plural, singular=singular, kind=kind,
                        namespaced=namespaced, **kw)


EVENT_FIELDS = (
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
    "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
    "reason", "reportingComponent", "source", "type",
)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core("namespaces", "namespace", "Namespace", False, short_names=("ns",), status_subresource=True,
          field_labels=("status.phase",)),
    _core("nodes", "node", "Node", False, short_names=("no",), status_subresource=True,
          field_labels=("spec.unschedulable",)),
    _core("pods", "pod", "Pod", True, short_names=("po",), status_subresource=True, categories=("all",),
          field_labels=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                        "status.phase", "status.podIP", "status.nominatedNodeName")),
    _core("secrets", "secret", "Secret", True, field_labels=("type",)),
    _core("configmaps", "configmap", "ConfigMap", True, short_names=("cm",)),
    _core("events", "event", "Event", True, short_names=("ev",), field_labels=EVENT_FIELDS),
    _core("services", "service", "Service", True, short_names=("svc",), status_subresource=True,
          categories=("all",)),
    ResourceType(group="coordination.k8s.io", version="v1", plural="leases", singular="lease", kind="Lease",
                 namespaced=True),
    ResourceType(group="events.k8s.io", version="v1", plural="events", singular="event", kind="Event",
                 namespaced=True, short_names=("ev",)),
    ResourceType(group="apiextensions.k8s.io", version="v1", plural="customresourcedefinitions",
                 singular="customresourcedefinition", kind="CustomResourceDefinition", namespaced=False,
                 short_names=("crd", "crds"), status_subresource=True, categories=("api-extensions",)),
)

CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One :class:`ResourceType` per served version of a CRD object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        sub = version.get("subresources") or {}
        scale_def = sub.get("scale")
        scale = None
        if scale_def is not None:
            scale = ScaleSpec(
                spec_replicas_path=scale_def.get("specReplicasPath", ".spec.replicas"),
                status_replicas_path=scale_def.get("statusReplicasPath", ".status.replicas"),
                label_selector_path=scale_def.get("labelSelectorPath"),
            )
        selectable = tuple(f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or [])
        result.append(ResourceType(
            group=group,
            version=version["name"],
            plural=names["plural"],
            singular=names.get("singular") or names.get("kind", "").lower(),
            kind=names["kind"],
            namespaced=namespaced,
            short_names=tuple(names.get("shortNames") or ()),
            status_subresource="status" in sub,
            scale=scale,
            printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
            schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            categories=tuple(names.get("categories") or ()),
            custom=True,
            field_labels=selectable,
        ))
    return result


def validate_crd(crd: dict[str, Any]) -> list[tuple[str, str]]:
    """Structural problems that make a CRD unusable, as ``(field, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    names = spec.get("names")
    group = spec.get("group")
    if not isinstance(group, str) or "." not in group:
        problems.append(("spec.group", "should be a domain with at least one dot"))
    if not isinstance(names, dict) or not names.get("plural") or not names.get("kind"):
        problems.append(("spec.names", "plural and kind are required"))
    elif group and crd.get("metadata", {}).get("name") != f"{names['plural']}.{group}":
        problems.append(("metadata.name", f"must be spec.names.plural+\".\"+spec.group "
                                          f"({names['plural']}.{group})"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(("spec.scope", 'supported values: "Cluster", "Namespaced"'))
    versions = spec.get("versions")
    if (not isinstance(versions, list) or not versions
            or sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1):
        problems.append(("spec.versions", "must have exactly one version marked as storage version"))
    elif any(not isinstance(v, dict) or not v.get("name") for v in versions):
        problems.append(("spec.versions", "every version needs a name"))
    return problems


class Registry:
    """Lookup of resource types by group/version/plural (or short name) and by storage key."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._by_crd: dict[str, list[ResourceType]] = {}
        for rt in BUILTIN_TYPES:
            self._by_gvr[(rt.group, rt.version, rt.plural)] = rt

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._by_gvr.values())

    def groups(self) -> dict[str, list[str]]:
        """Group → served versions (preferred first), core group excluded."""
        out: dict[str, list[str]] = {}
        for rt in self._by_gvr.values():
            if rt.group:
                versions = out.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        return out

    def by_key(self, key: str) -> list[ResourceType]:
        return [rt for rt in self._by_gvr.values() if rt.key == key]

    def install_crd(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        self.remove_crd(name)
        types = types_from_crd(crd)
        self._by_crd[name] = types
        for rt in types:
            self._by_gvr[(rt.group, rt.version, rt.plural)] = rt

    def remove_crd(self, name: str) -> None:
        for rt in self._by_crd.pop(name, []):
            self._by_gvr.pop((rt.group, rt.version, rt.plural), None)

    def custom_keys(self) -> set[str]:
        return {rt.key for types in self._by_crd.values() for rt in types}


def served_bytes(rt: ResourceType, obj: dict[str, Any], raw: bytes) -> bytes:
    """The stored bytes of ``obj`` as served at ``rt``'s version (custom resources keep one stored copy)."""
    if rt.custom and obj.get("apiVersion") != rt.api_version:
        return orjson.dumps({**obj, "apiVersion": rt.api_version})
    return raw
