"""Render the worker chart with real Helm (helm-python-sdk, Helm v4 as a library) and index what comes out.

The tests look at the chart the way an operator running ``helm template`` / ``helm install`` would: as the
list of Kubernetes objects it produces for a given set of values.
"""

from __future__ import annotations

import base64
import pathlib
from dataclasses import dataclass
from typing import Any

import helm_python as helm
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
CHART_DIR = REPO / "deploy" / "helm" / "agent-sandbox-worker"
CRD_DIR = REPO / "deploy" / "crds"
ENVOY_TEMPLATE = REPO / "deploy" / "envoy" / "envoy.yaml"
NAMESPACE = "agent-sandbox-system"
RELEASE = "agent-sandbox"

#: Value sets an operator is likely to use; every one must lint, render and validate.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "ingress": {"ingress": {"enabled": True, "className": "nginx", "host": "sandbox.example.com",
                            "tls": [{"secretName": "sandbox-tls", "hosts": ["sandbox.example.com"]}]}},
    "ingress-plain": {"ingress": {"enabled": True, "nginx": False}},
    "gateway-api": {"gatewayApi": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways"}],
                                   "hostnames": ["sandbox.example.com"]}},
    "metrics": {"metrics": {"enabled": True, "labels": {"release": "prometheus"}}},
    "existing-secret": {"auth": {"existingSecret": "my-credentials"}},
    "replicas-2": {"operator": {"replicas": 2}, "dataPlane": {"replicas": 3}},
    "scheduling": {"image": {"pullSecrets": ["regcred"]}, "listenAddress": "::",
                   "operator": {"nodeSelector": {"pool": "system"},
                                "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
                                "podAnnotations": {"team": "platform"}},
                   "dataPlane": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                       "nodeSelectorTerms": [{"matchExpressions": [
                           {"key": "edge", "operator": "In", "values": ["true"]}]}]}}}}},
    "single-no-lease": {"operator": {"leaderElection": False}, "samples": {"enabled": False},
                        "podDisruptionBudget": {"enabled": False}},
    "upstream-envoy": {"dataPlane": {"envoy": {"image": {"registry": "docker.io", "repository": "envoyproxy/envoy",
                                                         "tag": "v1.40.0"}}},
                       "operator": {"e2b": {"enabled": False}}},
}


@dataclass
class Rendered:
    objects: list[dict[str, Any]]
    notes: str

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.all(kind) if o["metadata"]["name"] == name), None)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.find(kind, name)
        assert found is not None, f"{kind}/{name} not rendered; have {sorted(self.names())}"
        return found

    def names(self) -> set[tuple[str, str]]:
        return {(o["kind"], o["metadata"]["name"]) for o in self.objects}

    def container(self, deployment: str, name: str) -> dict[str, Any]:
        pod = self.get("Deployment", deployment)["spec"]["template"]["spec"]
        return next(c for c in pod["containers"] if c["name"] == name)

    def secret_value(self, name: str, key: str) -> str:
        return base64.b64decode(self.get("Secret", name)["data"][key]).decode()


def load_chart() -> helm.Chart:
    helm.disable_logging()
    return helm.Chart.load(CHART_DIR)


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> Rendered:
    manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(objects, notes)


def container_port(container: dict[str, Any], name: str) -> int:
    return next(p["containerPort"] for p in container.get("ports", []) if p["name"] == name)


def listen_port(address: str) -> int:
    return int(address.rpartition(":")[2])
