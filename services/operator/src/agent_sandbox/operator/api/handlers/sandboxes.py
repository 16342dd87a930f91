"""Sandbox routes of the native API, backed by the service layer through :class:`SandboxAccess`.

Records come from the service layer as dicts; they are validated into the documented response models
before they leave, so what the server sends is exactly what the OpenAPI document promises.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from agent_sandbox.common.errors import ApiError, bad_request
from agent_sandbox.operator import podview as pv
from agent_sandbox.operator.api import readiness
from agent_sandbox.operator.api.binding import Handler
from agent_sandbox.operator.api.context import Call, Reply
from agent_sandbox.operator.api.envd_access import EnvdAccess
from agent_sandbox.operator.api.envd_exec import run_command
from agent_sandbox.operator.api.exec_tokens import ExecGrant
from agent_sandbox.operator.api.models.sandboxes import (
    DeleteSandboxResponse,
    EndpointReadiness,
    ExecRequest,
    ExecResult,
    ExecTokenResponse,
    Sandbox,
    SandboxEnvelope,
    SandboxList,
    SandboxLogsQuery,
    SandboxLogsResult,
    SetTimeoutRequest,
)
from agent_sandbox.operator.api.sandbox_access import SandboxAccess
from agent_sandbox.operator.services.models import CreateSandboxRequest
from agent_sandbox.operator.timeutil import now_utc

#: Bound on envd's health check, so a readiness poll answers promptly even when envd hangs.
ENVD_HEALTH_TIMEOUT_S = 3.0


def to_sandbox(record: dict[str, Any]) -> Sandbox:
    return Sandbox.model_validate({k: val for k, val in record.items() if val != ""})


async def envd_health(envd: EnvdAccess, pod: pv.Pod) -> EndpointReadiness:
    """envd's ``/health``, reached the way every other operator call to envd goes."""
    try:
        await asyncio.wait_for(envd.request(pod, "GET", "/health"), ENVD_HEALTH_TIMEOUT_S)
    except ApiError as exc:
        return EndpointReadiness(ready=False, message=exc.message)
    except TimeoutError:
        return EndpointReadiness(ready=False, message=f"envd did not answer within {ENVD_HEALTH_TIMEOUT_S:g}s")
    return EndpointReadiness(ready=True, message="envd answers its health check")


def handlers(access: SandboxAccess, envd: EnvdAccess) -> dict[str, Handler]:
    async def create(call: Call) -> Reply:
        req: CreateSandboxRequest = call.body
        return Reply(201, SandboxEnvelope(sandbox=to_sandbox(await access.create(call.identity, req))))

    async def get(call: Call) -> Reply:
        return Reply(200, SandboxEnvelope(sandbox=to_sandbox(await access.get(call.identity, call.path("id")))))

    async def list_(call: Call) -> Reply:
        q = call.query
        statuses = [s for s in (q.status or "").split(",") if s.strip()] or None
        records = access.records(call.identity, pool_name=q.poolName, statuses=statuses)
        items = [to_sandbox(r) for r in records[q.offset:q.offset + q.limit]]
        return Reply(200, SandboxList(items=items, total=len(records), limit=q.limit, offset=q.offset))

    async def delete(call: Call) -> Reply:
        out = await access.delete(call.identity, call.path("id"))
        return Reply(202, DeleteSandboxResponse.model_validate({k: val or "" for k, val in out.items()}))

    async def set_timeout(call: Call) -> Reply:
        req: SetTimeoutRequest = call.body
        await access.set_timeout(call.identity, call.path("id"), req.timeout)
        return Reply(204)

    async def logs(call: Call) -> Reply:
        q: SandboxLogsQuery = call.query
        if q.source != "stdout":
            raise bad_request(f"source {q.source!r} is not offered: only 'stdout' (the containers' output) is")
        out = await access.logs(call.identity, call.path("id"), q.container, q.lines)
        return Reply(200, SandboxLogsResult.model_validate(out))

    async def exec_token(call: Call) -> Reply:
        record = await access.get(call.identity, call.path("id"))
        if record.get("status") != "Running":
            raise bad_request(f"sandbox is {record.get('status')}, a terminal needs it Running")
        store = call.deps.exec_tokens
        token = store.issue(ExecGrant(sandbox_id=record["sandboxId"], namespace=record["namespace"],
                                      pod_name=record["podName"],
                                      containers=tuple(record.get("containerImages") or ())))
        return Reply(200, ExecTokenResponse(token=token, expiresAt=now_utc() + timedelta(seconds=store.ttl)))

    async def exec_command(call: Call) -> Reply:
        req: ExecRequest = call.body
        record = await access.get(call.identity, call.path("id"))
        pod = access.live_pod(record["sandboxId"]) if record.get("status") == "Running" else None
        if pod is None:
            raise bad_request(f"sandbox is {record.get('status')}, a command needs it Running")
        code, stdout, stderr = await run_command(envd, pod, req.command, req.timeoutSeconds)
        return Reply(200, ExecResult(exitCode=code, stdout=stdout, stderr=stderr))

    async def is_ready(call: Call) -> Reply:
        record = await access.get(call.identity, call.path("id"))
        pod = access.live_pod(record["sandboxId"])
        pod_state = readiness.pod_readiness(record, pod)
        envd_state = await envd_health(envd, pod) if pod_state.ready and pod is not None else \
            readiness.ENVD_NOT_PROBED
        result = readiness.sandbox_readiness(record["sandboxId"], pod_state, envd_state)
        return Reply(200 if result.ready else 503, result)

    return {
        "IsSandboxReady": is_ready,
        "ExecSandboxCommand": exec_command,
        "CreateSandbox": create,
        "GetSandbox": get,
        "ListSandboxes": list_,
        "DeleteSandbox": delete,
        "SetSandboxTimeout": set_timeout,
        "GetSandboxLogs": logs,
        "CreateSandboxExecToken": exec_token,
    }
