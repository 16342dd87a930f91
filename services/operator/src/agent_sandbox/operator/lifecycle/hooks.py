"""Post-start hooks (behaviour §11): run once a sandbox is Running.

Actions come from the ``post-start-hooks`` annotation, each either
``{"exec": {"command": [...]}}`` (``sh -c`` in container[0] through
pods/exec, 30 s) or ``{"httpPost": {"port", "path", "body", "headers"}}``
(``POST <gateway>/sandboxes/<id>/<port><path>``, 15 s, non-2xx fails), retried
with backoff 200 ms doubling, 5 attempts, cap 10 s. The outcome is written to the
pod (``post-start-hooks-status``) so whichever replica serves the create can
wait for it; a hook that keeps failing fails the sandbox (it is not usable).
An ``httpPost`` body may be stored sealed (``sealedBody``, see
:mod:`agent_sandbox.operator.lifecycle.hook_sealing`) and is opened only here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.stream import WsApiClient
from kubernetes_asyncio.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.lifecycle.hook_sealing import HookSealer, SealError

ANN_HOOKS_STATUS = v.PREFIX + "post-start-hooks-status"
HOOKS_DONE = "done"
HOOKS_FAILED_PREFIX = "failed: "
EXEC_TIMEOUT_S = 30.0
EXEC_OUTPUT_TAIL = 4096
HTTP_TIMEOUT_S = 15.0
RETRY_STEPS = 5
RETRY_BASE_S = 0.2
RETRY_CAP_S = 10.0

log = get_logger(__name__)


class ExecAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: list[str] | str


class HttpPostAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int = Field(ge=1, le=65535)
    path: str = "/"
    body: Any = None
    #: ``body`` sealed for this sandbox by the service layer (never set by callers).
    sealedBody: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class HookAction(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    exec_: ExecAction | None = Field(default=None, alias="exec")
    httpPost: HttpPostAction | None = None


class HookError(Exception):
    pass


def parse_hooks(raw: Any) -> list[HookAction]:
    """Validated hook list; raises ValueError with a readable message."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise ValueError("postStartHooks must be a list")
    try:
        hooks = [HookAction.model_validate(item) for item in raw]
    except ValidationError as exc:
        raise ValueError(f"invalid post-start hook: {exc.errors()[0]['msg']}") from exc
    for hook in hooks:
        if (hook.exec_ is None) == (hook.httpPost is None):
            raise ValueError("each post-start hook needs exactly one of exec or httpPost")
    return hooks


def seal_bodies(hooks: list[HookAction], sealer: HookSealer, sandbox_id: str) -> list[HookAction]:
    """``hooks`` with every ``httpPost`` body replaced by its sealed form."""
    out = []
    for hook in hooks:
        post = hook.httpPost
        if post is not None and post.body is not None:
            post = post.model_copy(update={"body": None, "sealedBody": sealer.seal(post.body, sandbox_id)})
            hook = hook.model_copy(update={"httpPost": post})
        out.append(hook)
    return out


def hooks_status(pod: pv.Pod) -> str:
    return pv.annotations(pod).get(ANN_HOOKS_STATUS, "")


class HookRunner:
    """Runs hooks; one per operator, sharing the HTTP session and the Kubernetes configuration."""

    def __init__(self, gateway_base_url: str, kube_configuration: k8s.Configuration | None,
                 session: aiohttp.ClientSession, sealer: HookSealer | None = None) -> None:
        self._gateway = gateway_base_url.rstrip("/")
        self._kube_conf = kube_configuration
        self._session = session
        self._sealer = sealer

    async def run(self, pod: pv.Pod) -> str:
        """Run all hooks of ``pod``; returns an empty string on success, else the failure message."""
        try:
            hooks = parse_hooks(pv.json_annotation(pod, v.ANN_POST_START_HOOKS, []))
        except ValueError as exc:
            return str(exc)
        for i, hook in enumerate(hooks):
            delay = RETRY_BASE_S
            for attempt in range(RETRY_STEPS):
                try:
                    await self._run_one(pod, hook)
                    break
                except Exception as exc:
                    if attempt == RETRY_STEPS - 1:
                        return f"post-start hook {i} failed: {exc}"
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_CAP_S)
        return ""

    async def _run_one(self, pod: pv.Pod, hook: HookAction) -> None:
        if hook.httpPost is not None:
            await self._http_post(pod, hook.httpPost)
        elif hook.exec_ is not None:
            await self._exec(pod, hook.exec_)

    async def _http_post(self, pod: pv.Pod, action: HttpPostAction) -> None:
        if not self._gateway:
            raise HookError("httpPost hooks need the data-plane gateway URL")
        path = action.path if action.path.startswith("/") else f"/{action.path}"
        body = action.body
        if action.sealedBody is not None:
            if self._sealer is None:
                raise HookError("the hook body is sealed but this operator has no secret to open it")
            try:
                body = self._sealer.open(action.sealedBody, pv.sandbox_id(pod))
            except SealError as exc:
                raise HookError(str(exc)) from None
        url = f"{self._gateway}/sandboxes/{pv.sandbox_id(pod)}/{action.port}{path}"
        async with self._session.post(url, json=body, headers=action.headers,
                                      timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as resp:
            if not 200 <= resp.status < 300:
                raise HookError(f"POST {path} on port {action.port} answered {resp.status}")

    async def _exec(self, pod: pv.Pod, action: ExecAction) -> None:
        if self._kube_conf is None:
            raise HookError("exec hooks need a Kubernetes configuration")
        script = action.command if isinstance(action.command, str) else " ".join(action.command)
        containers = pv.containers(pod)
        async with WsApiClient(configuration=self._kube_conf) as ws, asyncio.timeout(EXEC_TIMEOUT_S):
            api = k8s.CoreV1Api(api_client=ws)
            # Not the preloaded call: it returns the output and drops the error channel, so a
            # failing command would pass. Read the channels and judge the exit Status.
            connect = await api.connect_get_namespaced_pod_exec(
                pv.name(pod), pv.namespace(pod), command=["sh", "-c", script],
                container=containers[0].get("name") if containers else None,
                stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
            try:
                async with connect as sock:
                    output, status = await _exec_result(sock)
            except aiohttp.WSServerHandshakeError as exc:
                raise HookError(f"exec refused by the API server: {exc.status} {exc.message}") from None
        check_exec_status(status, output)
        log.debug("exec hook finished", pod=pv.key(pod), output_bytes=len(output))


async def _exec_result(sock: aiohttp.ClientWebSocketResponse) -> tuple[bytes, bytes | None]:
    """The tail of stdout+stderr and the error-channel Status of a remote-command WebSocket."""
    output = b""
    status = None
    async for msg in sock:
        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
            continue
        channel, data = msg.data[0], msg.data[1:]
        if channel in (STDOUT_CHANNEL, STDERR_CHANNEL):
            output = (output + data)[-EXEC_OUTPUT_TAIL:]
        elif channel == ERROR_CHANNEL:
            status = (status or b"") + data
    return output, status


def check_exec_status(status: bytes | None, output: bytes) -> None:
    """Raise HookError unless the error-channel ``status`` says the command succeeded."""
    if status is None:
        raise HookError("exec ended without an exit status")
    try:
        parsed = json.loads(status)
    except ValueError:
        raise HookError(f"exec ended with an unreadable status: {status[:200]!r}") from None
    if parsed.get("status") == "Success":
        return
    tail = output.decode(errors="replace").strip()[-500:]
    causes = (parsed.get("details") or {}).get("causes") or []
    code = next((c.get("message") for c in causes if c.get("reason") == "ExitCode"), None)
    reason = f"command exited with code {code}" if code is not None else parsed.get("message", "exec failed")
    raise HookError(f"{reason}: {tail}" if tail else reason)
