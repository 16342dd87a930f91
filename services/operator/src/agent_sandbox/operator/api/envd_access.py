"""How the operator reaches a sandbox's envd (metrics, terminals, exec).

Addressing is a URL template with ``{pod_ip}`` (and ``{sandbox_id}``): ``http://{pod_ip}:49983`` talks
to the pod directly (in-cluster, or a ``local`` node's loopback pod addresses); the bare data-plane URL
(``http://envoy:8092``) goes through Envoy + extproc exactly like the E2B SDK, routed by the
``E2b-Sandbox-Id``/``E2b-Sandbox-Port`` headers every call carries, along with the sandbox's derived
access token (when a secret is configured).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from agent_sandbox.common.envd_token import derive_envd_token
from agent_sandbox.common.errors import ApiError
from agent_sandbox.operator import podview as pv

ENVD_PORT = 49983
DEFAULT_URL_TEMPLATE = "http://{pod_ip}:" + str(ENVD_PORT)
TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3)


class EnvdAccess:
    def __init__(self, secret: str = "", url_template: str = DEFAULT_URL_TEMPLATE) -> None:
        self.secret = secret
        self.url_template = url_template
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def token(self, sandbox_id: str) -> str | None:
        """The envd access token of ``sandbox_id``; ``None`` when no secret is configured."""
        return derive_envd_token(self.secret, sandbox_id) if self.secret else None

    def base_url(self, pod: pv.Pod) -> str:
        ip = (pod.get("status") or {}).get("podIP") or ""
        if "{pod_ip}" in self.url_template and not ip:
            raise ApiError(503, "the sandbox has no address yet; retry", code="Unavailable")
        return self.url_template.format(pod_ip=ip, sandbox_id=pv.sandbox_id(pod)).rstrip("/")

    def headers(self, sandbox_id: str) -> dict[str, str]:
        headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": str(ENVD_PORT)}
        token = self.token(sandbox_id)
        if token:
            headers["X-Access-Token"] = token
        return headers

    async def request(self, pod: pv.Pod, method: str, path: str, body: Any = None) -> Any:
        """One JSON call to envd; answers 502 (retryable) when envd cannot be reached or refuses."""
        sid = pv.sandbox_id(pod)
        try:
            async with self.session.request(method, self.base_url(pod) + path, json=body,
                                            headers=self.headers(sid)) as resp:
                if resp.status >= 300:
                    # A gateway's 5xx (route not ready, envd not listening) is worth retrying; envd's 4xx is not.
                    status = 502 if resp.status >= 500 else 500
                    raise ApiError(status, f"envd answered {resp.status} to {method} {path}", code="EnvdError",
                                   retryable=status == 502)
                return await resp.json(content_type=None) if resp.status != 204 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(502, f"envd of sandbox {sid} is unreachable", code="EnvdUnreachable") from exc
