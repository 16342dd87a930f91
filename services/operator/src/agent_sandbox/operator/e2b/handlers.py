"""Handlers of the E2B control-plane routes, on top of the service layer (behaviour.md §16).

Create picks the sandbox id itself, derives the sandbox's envd access token from it, and claims from
the pool named by ``templateID`` with one post-start hook: envd ``/init`` carrying the env vars, the
default user and the token (the service layer stores the hook body sealed, since it holds secrets).
The service layer answers only once the sandbox is Running and that hook succeeded, so a 201 means
usable. A sandbox that fails to start is an error the caller sees (500, ``Should-Retry: false``,
with the reason) — never silently replaced by another pod, which would hide a broken template or
image; the broken pod itself is replaced by the pool. Timeouts are idle timeouts in seconds; connect
only ever extends them. A create with an ``Idempotency-Key`` claims at most one sandbox per key in the
whole cluster: duplicates on this replica share one attempt (``idempotency``), duplicates on other
replicas or after a restart find the key's record on a Lease (``key_reservations``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from agent_sandbox.common.errors import ApiError, bad_request, not_found
from agent_sandbox.common.ids import new_sandbox_id
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.api.envd_access import ENVD_PORT, EnvdAccess
from agent_sandbox.operator.api.errors import json_response
from agent_sandbox.operator.api.sandbox_access import SandboxAccess
from agent_sandbox.operator.api.validation import parse_model, read_json
from agent_sandbox.operator.auth.identity import Identity
from agent_sandbox.operator.e2b import listing, logs, views
from agent_sandbox.operator.e2b.idempotency import HEADER as IDEMPOTENCY_HEADER
from agent_sandbox.operator.e2b.idempotency import IdempotencyStore, check_key, fingerprint
from agent_sandbox.operator.e2b.key_reservations import Body, KeyReservations, Orphan
from agent_sandbox.operator.e2b.models import (
    ConnectRequest,
    LogsQuery,
    NewSandbox,
    RefreshRequest,
    Sandbox,
    SandboxMetric,
    TimeoutRequest,
    refuse_unsupported,
)
from agent_sandbox.operator.e2b.templates import claim_options, parse_template_id
from agent_sandbox.operator.services.errors import NotFound
from agent_sandbox.operator.services.models import CreateSandboxRequest
from agent_sandbox.operator.services.pools import PoolService
from agent_sandbox.operator.timeutil import now_utc

log = get_logger(__name__)

DEFAULT_USER = "user"
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity", Identity)


@dataclass
class E2BDeps:
    access: SandboxAccess
    pools: PoolService
    envd: EnvdAccess
    envd_version: str = "0.5.7"
    domain: str | None = None
    local_cluster_id: str = ""
    idempotency: IdempotencyStore[dict[str, Any]] = field(default_factory=IdempotencyStore)
    #: Cluster-wide key records (across replicas and restarts); ``None`` keeps keys in this process only.
    reservations: KeyReservations | None = None


def identity(request: web.Request) -> Identity:
    return request[IDENTITY]  # set by the server's auth middleware


def _seconds(value: int) -> str:
    return f"{value}s" if value > 0 else "0"


class E2BHandlers:
    def __init__(self, deps: E2BDeps) -> None:
        self.d = deps

    # ---- create / connect ------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.StreamResponse:
        ident = identity(request)
        raw = await read_json(request, required=False)
        req = parse_model(NewSandbox, raw, "request body")
        refuse_unsupported(req)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            body = await self._create(ident, req, self._new_id())
        else:
            key = check_key(key)
            scope = f"{ident.namespace}/{ident.team}/{ident.user}"
            request_fp = fingerprint(raw)
            body = await self.d.idempotency.run(scope, key, request_fp,
                                                lambda: self._create_once(ident, req, scope, key, request_fp))
        return json_response(body, 201)

    def _new_id(self) -> str:
        return new_sandbox_id(self.d.access.service.cluster_id)

    async def _create_once(self, ident: Identity, req: NewSandbox, scope: str, key: str,
                           request_fingerprint: str) -> dict[str, Any]:
        """A keyed create: at most one sandbox per key in the whole cluster (see ``key_reservations``)."""
        if self.d.reservations is None:
            return await self._create(ident, req, self._new_id())

        async def produce(sandbox_id: str) -> Body:
            return self._public(await self._create(ident, req, sandbox_id))

        async def adopt(sandbox_id: str) -> Body | Orphan:
            try:
                record = await self.d.access.get(ident, sandbox_id)
            except NotFound:
                return Orphan.GONE
            status = record.get("status")
            if status == "Running":
                return self._public(self._sandbox(record, None))
            return Orphan.STARTING if status in ("Starting", "Pending") else Orphan.GONE

        public = await self.d.reservations.run(scope, key, request_fingerprint, new_id=self._new_id,
                                               produce=produce, adopt=adopt)
        token = self.d.envd.token(public.get("sandboxID", ""))
        return {**public, "envdAccessToken": token} if token else public

    @staticmethod
    def _public(body: dict[str, Any]) -> Body:
        """A create answer without its secret (the envd token is derived again from the id on replay)."""
        return {k: val for k, val in body.items() if k != "envdAccessToken"}

    async def _create(self, ident: Identity, req: NewSandbox, sandbox_id: str) -> dict[str, Any]:
        ref = parse_template_id(req.templateID)
        if ref.cluster and ref.cluster != self.d.local_cluster_id:
            raise bad_request(f"cluster {ref.cluster!r} is not known here; use a template of this cluster")
        opts = claim_options(req.metadata, ref)
        token = self.d.envd.token(sandbox_id)
        init: dict[str, Any] = {"envVars": req.envVars or {}, "defaultUser": DEFAULT_USER}
        if token:
            init["accessToken"] = token
        claim = CreateSandboxRequest(
            poolName=ref.pool, image=opts.image or None, metadata=opts.metadata,
            idleTimeout=_seconds(req.timeout) if req.timeout is not None else None,
            startupTimeout=f"{opts.startup_timeout}s" if opts.startup_timeout else None,
            postStartHooks=[{"httpPost": {"port": ENVD_PORT, "path": "/init", "body": init}}], wait=opts.wait)
        try:
            record = await self.d.access.create(ident, claim, sandbox_id=sandbox_id)
        except NotFound as exc:
            raise bad_request(f"template {req.templateID!r} not found: no such pool in your namespace",
                              detail=exc.detail) from exc
        log.info("e2b sandbox created", sandbox_id=sandbox_id, pool=claim.poolName, namespace=ident.namespace)
        return self._sandbox(record, token)

    def _sandbox(self, record: dict[str, Any], token: str | None) -> dict[str, Any]:
        return Sandbox(templateID=record.get("poolName", ""), sandboxID=record["sandboxId"],
                       clientID=record.get("namespace", ""), envdVersion=self.d.envd_version,
                       envdAccessToken=token, domain=self.d.domain).wire()

    async def connect(self, request: web.Request) -> web.StreamResponse:
        ident = identity(request)
        sandbox_id = request.match_info["id"]
        req = parse_model(ConnectRequest, await read_json(request, required=False), "request body")
        record = await self._running(ident, sandbox_id)
        if req.timeout:
            await self._extend(ident, record, req.timeout)
        return json_response(self._sandbox(record, self.d.envd.token(sandbox_id)), 200)

    async def _extend(self, ident: Identity, record: dict[str, Any], seconds: int) -> None:
        pod = self.d.access.live_pod(record["sandboxId"])
        current = views.deadline(record, pod)
        if pod is not None and current is None:
            return  # no timeout: nothing to extend
        if current is not None and current >= now_utc() + timedelta(seconds=seconds):
            return
        await self.d.access.set_timeout(ident, record["sandboxId"], _seconds(seconds))

    # ---- read ------------------------------------------------------------------------------
    async def _running(self, ident: Identity, sandbox_id: str) -> dict[str, Any]:
        record = await self.d.access.get(ident, sandbox_id)
        if record.get("status") not in ("Running", "Starting", "Pending"):
            raise not_found(f"sandbox {sandbox_id} not found")
        return record

    def _pool(self, record: dict[str, Any]) -> dict[str, Any] | None:
        return self.d.access.pool(record.get("namespace", ""), record.get("poolName", ""))

    async def get(self, request: web.Request) -> web.StreamResponse:
        sandbox_id = request.match_info["id"]
        record = await self._running(identity(request), sandbox_id)
        detail = views.sandbox_detail(record, self.d.access.live_pod(sandbox_id), self._pool(record),
                                      self.d.envd_version, token=self.d.envd.token(sandbox_id),
                                      domain=self.d.domain)
        return json_response(detail.wire())

    def _listed(self, ident: Identity) -> list[dict[str, Any]]:
        records = self.d.access.records(ident, statuses=["Running"])
        return [views.listed_sandbox(r, self.d.access.live_pod(r["sandboxId"]), self._pool(r),
                                     self.d.envd_version).wire() for r in records]

    async def list_v1(self, request: web.Request) -> web.StreamResponse:
        wanted = listing.parse_metadata(request.query.get("metadata"))
        items = [it for it in self._listed(identity(request))
                 if all(it["metadata"].get(k) == val for k, val in wanted.items())]
        return json_response(items)

    async def list_v2(self, request: web.Request) -> web.StreamResponse:
        query = listing.parse_list_query({k: request.query[k] for k in request.query})
        page, token = listing.select_page(self._listed(identity(request)), query)
        return json_response(page, headers={"x-next-token": token} if token else None)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        sandbox_id = request.match_info["id"]
        await self._running(identity(request), sandbox_id)
        pod = self.d.access.live_pod(sandbox_id)
        if pod is None:
            raise not_found(f"sandbox {sandbox_id} not found")
        sample = await self.d.envd.request(pod, "GET", "/metrics")
        if not isinstance(sample, dict):
            raise ApiError(502, "envd sent no metrics", code="EnvdError")
        ts = int(sample.get("ts") or now_utc().timestamp())
        metric = SandboxMetric(
            timestamp=datetime.fromtimestamp(ts, tz=UTC), timestampUnix=ts,
            cpuCount=int(sample.get("cpu_count") or 0), cpuUsedPct=float(sample.get("cpu_used_pct") or 0),
            memUsed=int(sample.get("mem_used") or 0), memTotal=int(sample.get("mem_total") or 0),
            memCache=int(sample.get("mem_cache") or 0), diskUsed=int(sample.get("disk_used") or 0),
            diskTotal=int(sample.get("disk_total") or 0))
        return json_response([metric.wire()])

    async def logs_v1(self, request: web.Request) -> web.StreamResponse:
        query, result = await self._logs(request)
        return json_response(logs.logs_v1(result, query))

    async def logs_v2(self, request: web.Request) -> web.StreamResponse:
        query, result = await self._logs(request)
        return json_response(logs.logs_v2(result, query))

    async def _logs(self, request: web.Request) -> tuple[LogsQuery, dict[str, Any]]:
        query = parse_model(LogsQuery, dict(request.query), "query")
        ident = identity(request)
        sandbox_id = request.match_info["id"]
        await self._running(ident, sandbox_id)
        return query, await self.d.access.logs(ident, sandbox_id)

    # ---- write -----------------------------------------------------------------------------
    async def delete(self, request: web.Request) -> web.StreamResponse:
        ident = identity(request)
        sandbox_id = request.match_info["id"]
        await self._running(ident, sandbox_id)
        await self.d.access.delete(ident, sandbox_id)
        return web.Response(status=204)

    async def set_timeout(self, request: web.Request) -> web.StreamResponse:
        req = parse_model(TimeoutRequest, await read_json(request), "request body")
        await self._timeout(request, req.timeout)
        return web.Response(status=204)

    async def refresh(self, request: web.Request) -> web.StreamResponse:
        req = parse_model(RefreshRequest, await read_json(request, required=False), "request body")
        await self._timeout(request, req.duration if req.duration is not None else 300)
        return web.Response(status=204)

    async def _timeout(self, request: web.Request, seconds: int) -> None:
        ident = identity(request)
        sandbox_id = request.match_info["id"]
        await self._running(ident, sandbox_id)
        await self.d.access.set_timeout(ident, sandbox_id, _seconds(seconds))

    # ---- templates -------------------------------------------------------------------------
    def _templates(self, ident: Identity) -> list[dict[str, Any]]:
        out = []
        for pool in self.d.pools.list(ident.namespace):
            meta = pool["metadata"]
            running = self.d.pools.counts(meta.get("namespace", ""), meta.get("name", ""))["running"]
            out.append(views.template_view(pool, running, self.d.envd_version).wire())
        return out

    async def list_templates(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._templates(identity(request)))

    async def get_template(self, request: web.Request) -> web.StreamResponse:
        template_id = request.match_info["id"]
        for item in self._templates(identity(request)):
            if item["templateID"] == template_id:
                return json_response(item)
        raise not_found(f"template {template_id} not found")
