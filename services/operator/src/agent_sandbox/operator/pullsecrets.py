"""Per-pool image-pull Secrets (behaviour §13): the Secret object and the pod-template reference. Pure.

A pool created with registry credentials gets one ``kubernetes.io/dockerconfigjson`` Secret named
``ips-<pool>``, owned by the pool so that deleting the pool garbage-collects it, and its pod template
lists the Secret in ``imagePullSecrets`` so every pod — including in-place image swaps — pulls with it.
The reference is by name only: passwords live in the Secret and never in the pool object, so reading
a pool can never reveal them.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable
from typing import Any

import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.operator.services.models import RegistryCredential

SECRET_TYPE = "kubernetes.io/dockerconfigjson"
DATA_KEY = ".dockerconfigjson"


def pull_secret_name(pool_name: str) -> str:
    return f"ips-{pool_name}"


def dockerconfigjson(logins: Iterable[RegistryCredential]) -> bytes:
    """The ``.dockerconfigjson`` document kubelets and container runtimes read credentials from."""
    auths: dict[str, dict[str, str]] = {}
    for login in logins:
        password = login.password.get_secret_value()
        auth = base64.b64encode(f"{login.username}:{password}".encode()).decode()
        auths[login.registry] = {"username": login.username, "password": password, "auth": auth}
    return orjson.dumps({"auths": auths})


def pull_secret(pool: dict[str, Any], logins: Iterable[RegistryCredential]) -> dict[str, Any]:
    """The Secret object for the created ``pool`` (its ``uid`` makes the pool the Secret's owner)."""
    meta = pool.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": pull_secret_name(meta.get("name", "")),
            "namespace": meta.get("namespace", ""),
            "labels": {v.LABEL_TYPE: v.TYPE_IMAGE_PULL_SECRET},
            "ownerReferences": [{
                "apiVersion": v.API_VERSION, "kind": v.POOL_KIND, "name": meta.get("name", ""),
                "uid": meta.get("uid", ""), "blockOwnerDeletion": True,
            }],
        },
        "data": {DATA_KEY: base64.b64encode(dockerconfigjson(logins)).decode()},
    }


def referenced_secrets(template: dict[str, Any]) -> list[str]:
    """Names in the pod template's ``imagePullSecrets``."""
    refs = ((template or {}).get("spec") or {}).get("imagePullSecrets") or []
    return [r.get("name", "") for r in refs if isinstance(r, dict)]


def with_pull_secret(template: dict[str, Any], secret_name: str) -> dict[str, Any]:
    """A copy of the pod template that lists ``secret_name`` in ``imagePullSecrets`` (once)."""
    out = copy.deepcopy(template or {})
    spec = out.setdefault("spec", {})
    refs = [r for r in spec.get("imagePullSecrets") or [] if isinstance(r, dict)]
    if secret_name not in [r.get("name") for r in refs]:
        refs.append({"name": secret_name})
    spec["imagePullSecrets"] = refs
    return out
