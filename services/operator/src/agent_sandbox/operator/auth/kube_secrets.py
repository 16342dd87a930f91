"""The Kubernetes calls authentication needs: API-key Secrets and Namespace existence.

Built on the operator's raw-JSON :class:`~agent_sandbox.operator.kube.client.KubeClient`, so it works
the same against a real cluster and the embedded control plane. :class:`KubeAuthBackend` is what the
key store and the namespace resolver are given; nothing else in ``auth`` touches the network.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

from agent_sandbox.operator.kube.client import KubeClient, KubeError


class AuthBackend(Protocol):
    async def list_secrets(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...
    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def delete_secret(self, namespace: str, name: str) -> bool: ...
    async def namespace_exists(self, name: str) -> bool: ...


class SecretExists(Exception):
    """A Secret of that name already exists."""


def _secrets(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"
    return f"{base}/{quote(name, safe='')}" if name else base


class KubeAuthBackend:
    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    async def list_secrets(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return list((await self._kube.list(_secrets(namespace), label_selector=label_selector)).get("items") or [])

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._kube.create(_secrets(namespace), body)
        except KubeError as exc:
            if exc.conflict:
                raise SecretExists(body["metadata"]["name"]) from exc
            raise

    async def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._kube.replace(_secrets(namespace, name), body)

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._kube.get(_secrets(namespace, name))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def delete_secret(self, namespace: str, name: str) -> bool:
        try:
            await self._kube.delete(_secrets(namespace, name))
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def namespace_exists(self, name: str) -> bool:
        try:
            await self._kube.get(f"/api/v1/namespaces/{quote(name, safe='')}")
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True
