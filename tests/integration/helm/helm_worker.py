"""Render the worker chart with real Helm (helm-python-sdk, Helm v4 as a library) and index what comes out.

The tests look at the chart the way an operator running ``helm template`` / ``helm install`` would: as the
list of Kubernetes objects it produces for a given set of values.
"""

from __future__ import annotations

import base64
import os
import pathlib
import re
import subprocess
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


# ---- a pod's containers as local processes -------------------------------------------------------------------
# Each volume of the pod becomes the directory <workdir>/<volume name>, shared by its containers as in the pod:
# ConfigMap volumes hold the rendered ConfigMap's keys, emptyDir volumes start empty.


def pod_spec(r: Rendered, deployment: str) -> dict[str, Any]:
    return r.get("Deployment", deployment)["spec"]["template"]["spec"]


def prepare_volumes(r: Rendered, deployment: str, workdir: pathlib.Path) -> None:
    for volume in pod_spec(r, deployment)["volumes"]:
        local = workdir / volume["name"]
        local.mkdir(exist_ok=True)
        if "configMap" in volume:
            for key, value in r.get("ConfigMap", volume["configMap"]["name"])["data"].items():
                (local / key).write_text(value)


def local_args(container: dict[str, Any], workdir: pathlib.Path) -> list[str]:
    """The container's command and args, every path under a volume mount moved to the volume's directory."""
    # /tmp is scratch space and stays the host's: the tests' own files (e.g. the embedded control plane's
    # kubeconfig, passed through extraArgs) live there.
    local = {m["mountPath"]: str(workdir / m["name"]) for m in container.get("volumeMounts", [])
             if m["mountPath"] != "/tmp"}
    if not local:
        return [*container.get("command", []), *container.get("args", [])]
    # One pass, longest mount first, whole path components only (/etc/envoy is not /etc/envoy-template).
    mounts = "|".join(re.escape(p) for p in sorted(local, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w/.-])(?:{mounts})(?=/|$)")
    return [pattern.sub(lambda m: local[m.group(0)], a)
            for a in [*container.get("command", []), *container.get("args", [])]]


def container_env(r: Rendered, container: dict[str, Any]) -> dict[str, str]:
    """The container's env as the kubelet builds it: literal values and Secret references resolved."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        env[var["name"]] = r.secret_value(ref["name"], ref["key"]) if ref else var["value"]
    return env


def run_init_containers(r: Rendered, deployment: str, workdir: pathlib.Path) -> None:
    """Run the pod's init containers to completion, in order, like the kubelet before the main containers."""
    prepare_volumes(r, deployment, workdir)
    for container in pod_spec(r, deployment).get("initContainers", []):
        done = subprocess.run(local_args(container, workdir), env={"PATH": os.environ["PATH"],
                                                                   **container_env(r, container)},
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, f"init container {container['name']} failed: {done.stderr}"
