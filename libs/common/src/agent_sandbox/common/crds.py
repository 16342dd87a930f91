"""CustomResourceDefinitions of SandboxPool and SandboxTemplate, built in code.

The two CRDs share the embedded sandbox template (``template``, ``idleImage``,
``runtimes``); building both from one set of schema pieces keeps them from
drifting apart. ``deploy/crds/*.yaml`` are rendered from here by
``scripts/gen-crds`` and a test checks the committed files are current.
"""

from __future__ import annotations

from typing import Any

from agent_sandbox.common import vocabulary as v

Schema = dict[str, Any]

_DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"


def _int(minimum: int = 0, default: int | None = None, fmt: str = "int32") -> Schema:
    s: Schema = {"type": "integer", "format": fmt, "minimum": minimum}
    if default is not None:
        s["default"] = default
    return s


def _duration(description: str) -> Schema:
    return {"type": "string", "pattern": _DURATION_PATTERN, "description": description}


def _conditions() -> Schema:
    return {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "type": {"type": "string"},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "reason": {"type": "string"},
                "message": {"type": "string"},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "observedGeneration": {"type": "integer", "format": "int64"},
            },
        },
    }


def _runtimes() -> Schema:
    return {
        "type": "array",
        "description": "Runtime endpoints served inside the sandbox (envd, code interpreter, ...).",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name", "port"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
                "protocol": {"type": "string", "default": "TCP", "enum": ["TCP", "UDP", "SCTP"]},
                "description": {"type": "string"},
                "logDir": {"type": "string"},
                "readinessProbe": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
    }


def embedded_template_properties() -> dict[str, Schema]:
    """Fields a SandboxPool embeds from its SandboxTemplate."""
    return {
        "template": {
            "type": "object",
            "description": "Pod template (PodTemplateSpec) of the sandbox pods.",
            "x-kubernetes-preserve-unknown-fields": True,
        },
        "idleImage": {
            "type": "string",
            "description": "Image of container[0] while the pod is idle; must differ from the workload image.",
        },
        "runtimes": _runtimes(),
    }


def _autoscaling() -> Schema:
    return {
        "type": "object",
        "properties": {
            "enabled": {"type": "boolean", "default": False},
            "scaleUpPolicy": {
                "type": "object",
                "default": {},
                "properties": {
                    "mode": {
                        "type": "string",
                        "enum": ["Conservative", "Default", "Aggressive"],
                        "default": "Default",
                    },
                    "cooldownSeconds": _int(default=30),
                    "idleThresholdSeconds": _int(default=30),
                },
            },
            "scaleDownPolicy": {
                "type": "object",
                "default": {},
                "properties": {
                    "idleTimeoutSeconds": _int(default=300),
                    "stabilizationSeconds": _int(default=60),
                    "protectionWindowSeconds": _int(default=10),
                },
            },
        },
    }


def _count(description: str) -> Schema:
    return {"type": "integer", "format": "int32", "minimum": 0, "description": description}


def _pool_status() -> Schema:
    return {
        "type": "object",
        "properties": {
            "phase": {"type": "string", "enum": [p.value for p in v.PoolPhase]},
            "idleReplicas": _count("idle pods"),
            "unavailableIdleReplicas": _count("idle pods whose PodReady is not True"),
            "runningReplicas": _count("running sandboxes"),
            "startingReplicas": _count("sandboxes starting (image swap in flight)"),
            "stoppingReplicas": _count("sandboxes stopping (swap back to idle in flight)"),
            "failedReplicas": _count("failed pods"),
            "pendingRequests": _count("claims waiting in the scheduler queue"),
            "lastScaleUpTime": {"type": "string", "format": "date-time"},
            "lastScaleDownTime": {"type": "string", "format": "date-time"},
            "idleZeroSince": {"type": "string", "format": "date-time"},
            "selector": {"type": "string"},
            "labelSelector": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "phaseSelectors": {"type": "object", "additionalProperties": {"type": "string"}},
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": _conditions(),
        },
    }


def _pool_spec() -> Schema:
    return {
        "type": "object",
        "required": ["replicas"],
        "properties": {
            "replicas": _count("total desired pods (idle + starting + running + stopping)"),
            "minReplicas": _count("autoscaler lower bound"),
            "maxReplicas": _count("autoscaler upper bound"),
            "templateName": {"type": "string", "description": "SandboxTemplate this pool was created from"},
            "defaultStartupTimeout": _duration("default startup timeout of a sandbox (nil: 2m)"),
            "defaultIdleTimeout": _duration("default idle timeout of a sandbox (nil: none)"),
            "podCreationImagePolicy": {
                "type": "string",
                "enum": [p.value for p in v.PodCreationImagePolicy],
                "default": v.PodCreationImagePolicy.IDLE_IMAGE.value,
            },
            "autoscaling": _autoscaling(),
            **embedded_template_properties(),
        },
    }


def _column(name: str, json_path: str, type_: str = "integer", priority: int = 0) -> Schema:
    col: Schema = {"name": name, "type": type_, "jsonPath": json_path}
    if priority:
        col["priority"] = priority
    return col


def _crd(
    kind: str, plural: str, short: str, scope: str, schema: Schema, columns: list[Schema], subresources: Schema
) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{v.GROUP}"},
        "spec": {
            "group": v.GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["agentsandbox"],
            },
            "versions": [
                {
                    "name": v.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def _object(spec: Schema, status: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def sandbox_pool_crd() -> Schema:
    columns = [
        _column("Phase", ".status.phase", "string"),
        _column("Replicas", ".spec.replicas"),
        _column("Idle", ".status.idleReplicas"),
        _column("Unavail", ".status.unavailableIdleReplicas"),
        _column("Running", ".status.runningReplicas"),
        _column("Starting", ".status.startingReplicas"),
        _column("Stopping", ".status.stoppingReplicas"),
        _column("Failed", ".status.failedReplicas"),
        _column("Age", ".metadata.creationTimestamp", "date"),
    ]
    subresources = {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.runningReplicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    return _crd(
        v.POOL_KIND, v.POOL_PLURAL, v.POOL_SHORT_NAME, "Namespaced",
        _object(_pool_spec(), _pool_status()), columns, subresources,
    )


def sandbox_template_crd() -> Schema:
    spec: Schema = {
        "type": "object",
        "properties": {
            "version": {"type": "string", "description": "free-form version, e.g. v1.2.0"},
            "description": {"type": "string"},
            "visibility": {
                "type": "object",
                "properties": {
                    "rules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "team": {"type": "string"},
                                "users": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    }
                },
            },
            **embedded_template_properties(),
        },
    }
    status: Schema = {"type": "object", "properties": {"conditions": _conditions()}}
    columns = [
        _column("Version", ".spec.version", "string"),
        _column("Age", ".metadata.creationTimestamp", "date"),
    ]
    return _crd(
        v.TEMPLATE_KIND, v.TEMPLATE_PLURAL, v.TEMPLATE_SHORT_NAME, "Cluster",
        _object(spec, status), columns, {"status": {}},
    )


def all_crds() -> dict[str, Schema]:
    """File name (under ``deploy/crds/``) → CRD manifest."""
    return {
        f"{v.GROUP}_{v.POOL_PLURAL}.yaml": sandbox_pool_crd(),
        f"{v.GROUP}_{v.TEMPLATE_PLURAL}.yaml": sandbox_template_crd(),
    }


def render_yaml(crd: Schema) -> str:
    import yaml

    header = "# Generated by scripts/gen-crds from agent_sandbox.common.crds; do not edit by hand.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, allow_unicode=True)
