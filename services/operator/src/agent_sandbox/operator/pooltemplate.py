"""Pure construction of pool specs and idle pods (behaviour §6.2, §13).

A pool is created from a SandboxTemplate's embedded template plus overrides
(workload image, resource multiplier); an idle pod is the pool's pod template
with our labels, owner reference, protection finalizer and — under the
``IdleImage`` policy — the idle image in container[0]. A template sync rebuilds
the template-derived part of a pool the same way, from the overrides stamped at
create, so a synced pool equals a pool freshly created with the same request.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.pullsecrets import pull_secret_name, referenced_secrets, with_pull_secret
from agent_sandbox.operator.quantities import scale_quantity

#: Pool/template metadata never copied to pods (bookkeeping or docs, not pod identity).
_SKIP_ANNOTATIONS = {v.ANN_DOCS, v.ANN_SCALE_UP_PENDING, "kubectl.kubernetes.io/last-applied-configuration"}
_SKIP_LABELS = {v.LABEL_SYNC_SOURCE}


def first_container(template: dict[str, Any]) -> dict[str, Any] | None:
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    return containers[0] if containers else None


def apply_overrides(template: dict[str, Any], image: str | None, multiplier: float | None) -> dict[str, Any]:
    """A copy of the pod template with container[0]'s image replaced and resources multiplied."""
    out = copy.deepcopy(template or {})
    containers = (out.get("spec") or {}).get("containers") or []
    if image and containers:
        containers[0]["image"] = image
    if multiplier is not None and multiplier != 1:
        factor = Decimal(str(multiplier))
        for container in containers:
            resources = container.get("resources") or {}
            for section in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res in (resources.get(section) or {}):
                        resources[section][res] = scale_quantity(res, str(resources[section][res]), factor)
    return out


def pool_from_template(
    template: dict[str, Any],
    name: str,
    namespace: str,
    spec_fields: dict[str, Any],
    labels: dict[str, str],
    annotations: dict[str, str],
    image: str | None = None,
    multiplier: float | None = None,
) -> dict[str, Any]:
    """A SandboxPool object built from a SandboxTemplate with overrides stamped into annotations."""
    tmeta = template.get("metadata") or {}
    tspec = template.get("spec") or {}
    pool_labels = {k: val for k, val in (tmeta.get("labels") or {}).items() if k not in _SKIP_LABELS}
    pool_labels.update(labels)
    pool_annotations = {k: val for k, val in (tmeta.get("annotations") or {}).items() if k != v.ANN_DOCS}
    pool_annotations.update(annotations)
    overrides = {k: val for k, val in (("image", image), ("resourceMultiplier", multiplier)) if val}
    pool_annotations.update({
        v.ANN_TEMPLATE_NAME: tmeta.get("name", ""),
        v.ANN_TEMPLATE_VERSION: str(tspec.get("version", "")),
        v.ANN_OVERRIDES: orjson.dumps(overrides).decode(),
    })
    spec = {
        **spec_fields,
        "templateName": tmeta.get("name", ""),
        "template": apply_overrides(tspec.get("template") or {}, image, multiplier),
        "idleImage": tspec.get("idleImage", ""),
    }
    if tspec.get("runtimes"):
        spec["runtimes"] = copy.deepcopy(tspec["runtimes"])
    return {
        "apiVersion": v.API_VERSION,
        "kind": v.POOL_KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": pool_labels,
                     "annotations": pool_annotations},
        "spec": spec,
    }


def template_name_of(pool: dict[str, Any]) -> str:
    """The SandboxTemplate a pool was created from; empty for a pool built from an inline spec."""
    annotations = (pool.get("metadata") or {}).get("annotations") or {}
    return (pool.get("spec") or {}).get("templateName") or annotations.get(v.ANN_TEMPLATE_NAME, "")


def stored_overrides(pool: dict[str, Any]) -> tuple[str | None, float | None]:
    """(image, resourceMultiplier) from the pool's overrides annotation; unreadable values count as none."""
    raw = ((pool.get("metadata") or {}).get("annotations") or {}).get(v.ANN_OVERRIDES) or "{}"
    try:
        stored = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(stored, dict):
        return None, None
    image = stored.get("image")
    multiplier = stored.get("resourceMultiplier")
    return (image if isinstance(image, str) and image else None,
            float(multiplier) if isinstance(multiplier, int | float) and multiplier >= 1 else None)


def synced_pool(pool: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    """``pool`` with its template-derived spec re-copied from ``template`` and the stored overrides re-applied.

    Pool-owned settings (replicas, bounds, autoscaling, timeouts, image policy), labels and the rest of
    the annotations stay; the pod template, idle image and runtimes come from the template; the pool's
    own image-pull Secret stays referenced. Only the template-version annotation changes in metadata.
    """
    out = copy.deepcopy(pool)
    tmeta = template.get("metadata") or {}
    tspec = template.get("spec") or {}
    image, multiplier = stored_overrides(pool)
    spec = out.setdefault("spec", {})
    pod_template = apply_overrides(tspec.get("template") or {}, image, multiplier)
    secret = pull_secret_name((pool.get("metadata") or {}).get("name", ""))
    if secret in referenced_secrets(spec.get("template") or {}):
        pod_template = with_pull_secret(pod_template, secret)
    spec["template"] = pod_template
    spec["templateName"] = tmeta.get("name", "")
    if tspec.get("idleImage"):
        spec["idleImage"] = tspec["idleImage"]
    if tspec.get("runtimes"):
        spec["runtimes"] = copy.deepcopy(tspec["runtimes"])
    else:
        spec.pop("runtimes", None)
    annotations = out.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[v.ANN_TEMPLATE_NAME] = tmeta.get("name", "")
    annotations[v.ANN_TEMPLATE_VERSION] = str(tspec.get("version", ""))
    return out


def build_idle_pod(pool: dict[str, Any]) -> dict[str, Any]:
    """The pod the reconciler creates to grow ``pool`` by one."""
    meta = pool.get("metadata") or {}
    spec = pool.get("spec") or {}
    template = spec.get("template") or {}
    tmeta = template.get("metadata") or {}
    pod_spec = copy.deepcopy(template.get("spec") or {})
    policy = spec.get("podCreationImagePolicy") or v.PodCreationImagePolicy.IDLE_IMAGE.value
    containers = pod_spec.get("containers") or []
    if policy == v.PodCreationImagePolicy.IDLE_IMAGE and spec.get("idleImage") and containers:
        containers[0]["image"] = spec["idleImage"]
    labels = {k: val for k, val in (tmeta.get("labels") or {}).items() if k not in _SKIP_LABELS}
    labels.update({k: val for k, val in (meta.get("labels") or {}).items() if k not in _SKIP_LABELS})
    labels[v.LABEL_SANDBOX_POOL] = meta.get("name", "")
    labels[v.LABEL_SANDBOX_PHASE] = v.SandboxPhase.IDLE.value
    annotations = {k: val for k, val in (tmeta.get("annotations") or {}).items() if k not in _SKIP_ANNOTATIONS}
    annotations.update({k: val for k, val in (meta.get("annotations") or {}).items()
                        if k not in _SKIP_ANNOTATIONS})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{meta.get('name', '')}-",
            "namespace": meta.get("namespace", ""),
            "labels": labels,
            "annotations": annotations,
            "finalizers": [v.FINALIZER_SANDBOX_PROTECTION],
            "ownerReferences": [{
                "apiVersion": v.API_VERSION, "kind": v.POOL_KIND, "name": meta.get("name", ""),
                "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": pod_spec,
    }


def idle_labels(pool: dict[str, Any]) -> dict[str, str]:
    """Values of caller-owned labels (team/user) an idle pod inherits from its pool."""
    labels = (pool.get("metadata") or {}).get("labels") or {}
    return {k: labels[k] for k in (v.LABEL_TEAM, v.LABEL_USER) if k in labels}
