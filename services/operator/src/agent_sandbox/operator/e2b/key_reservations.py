"""Cluster-wide ``Idempotency-Key`` reservations, kept on Kubernetes Leases (no other storage).

Every operator replica serves creates, and a replica may die or restart between claiming a pod and
answering; an in-process record cannot stop a retry on another replica (or after a restart) from
claiming a second pod, nor lead the caller back to the sandbox whose answer was lost. So each key
gets one Lease in the operator's namespace, named by an HMAC of (caller scope, key) under the
operator secret — the same name on every replica, and the key itself never appears in the cluster.
The Lease is created create-only: the apiserver lets exactly one replica win (409 for the others).
It records the request fingerprint, the sandbox id the winner claims under, how long the attempt
may stay in flight, when the record expires, and — once the create succeeded — the answer without
its secrets (the envd access token derives from the sandbox id and is re-derived on every replay).

A duplicate polls the Lease while the first attempt is in flight, then replays its answer; a
different body under the same key is a 409. A failed or abandoned first attempt deletes its Lease,
so the key is free for a fresh attempt. An attempt whose replica died stays "in flight" until its
deadline; then the next duplicate adopts the sandbox if it is running (the answer the caller lost)
or frees the key. Expired Leases are reused on the spot and removed by a bounded sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson

from agent_sandbox.common import vocabulary as v
from agent_sandbox.common.errors import ApiError, conflict
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.kube.client import KubeClient, KubeError, leases_path
from agent_sandbox.operator.lifecycle.timeouts import DEFAULT_STARTUP_TIMEOUT_S
from agent_sandbox.operator.timeutil import format_time, now_utc, parse_time

log = get_logger(__name__)

LABEL_IDEMPOTENCY = v.GROUP + "/idempotency-key"
_ANN = "idempotency." + v.GROUP + "/"
ANN_FINGERPRINT = _ANN + "fingerprint"
ANN_SANDBOX_ID = _ANN + "sandbox-id"
ANN_INFLIGHT_UNTIL = _ANN + "in-flight-until"
ANN_EXPIRES_AT = _ANN + "expires-at"
ANN_RESPONSE = _ANN + "response"
NAME_PREFIX = "idem-"

Body = dict[str, Any]


class Verdict(enum.Enum):
    """What a duplicate does with the record another attempt left."""

    EXPIRED = "expired"  # past its TTL: the key is free (delete the record, reserve anew)
    MISMATCH = "mismatch"  # the key was used for a different request: 409
    DONE = "done"  # the first attempt succeeded: replay its answer
    ABANDONED = "abandoned"  # still "in flight" past its deadline: its replica died; adopt or free
    WAIT = "wait"  # the first attempt is in flight: poll


class Orphan(enum.Enum):
    """What became of an abandoned attempt's sandbox, when it is not running (see ``KeyReservations.run``)."""

    GONE = "gone"  # never claimed, failed or ended: free the key
    STARTING = "starting"  # claimed and still starting: keep waiting, never claim a second pod


@dataclass(frozen=True, slots=True)
class Entry:
    """The record of one key, as read from its Lease's annotations."""

    fingerprint: str
    sandbox_id: str
    inflight_until: datetime | None
    expires_at: datetime | None
    response: Body | None

    @classmethod
    def of(cls, lease: dict[str, Any]) -> Entry:
        ann = (lease.get("metadata") or {}).get("annotations") or {}
        response: Any = None
        with contextlib.suppress(orjson.JSONDecodeError):
            response = orjson.loads(ann.get(ANN_RESPONSE) or "null")
        return cls(fingerprint=ann.get(ANN_FINGERPRINT, ""), sandbox_id=ann.get(ANN_SANDBOX_ID, ""),
                   inflight_until=parse_time(ann.get(ANN_INFLIGHT_UNTIL)),
                   expires_at=parse_time(ann.get(ANN_EXPIRES_AT)),
                   response=response if isinstance(response, dict) else None)


def decide(entry: Entry, fingerprint: str, now: datetime) -> Verdict:
    """The duplicate's move; a record with unreadable times counts as expired (never blocks a key)."""
    if entry.expires_at is None or entry.expires_at <= now:
        return Verdict.EXPIRED
    if entry.fingerprint != fingerprint:
        return Verdict.MISMATCH
    if entry.response is not None:
        return Verdict.DONE
    if entry.inflight_until is None or entry.inflight_until <= now:
        return Verdict.ABANDONED
    return Verdict.WAIT


def lease_name(secret: bytes, scope: str, key: str) -> str:
    """``idem-<40 hex>``: the same on every replica sharing the secret; reveals neither scope nor key."""
    digest = hmac.new(secret, f"{scope}\n{key}".encode(), hashlib.sha256).hexdigest()
    return NAME_PREFIX + digest[:40]


def _unavailable(exc: Exception) -> ApiError:
    return ApiError(503, "the idempotency record could not be read or written; retry the create",
                    code="IdempotencyStoreUnavailable", detail=str(exc)[:200], retryable=True)


async def _or_none(call: Awaitable[dict[str, Any]], expected: Callable[[KubeError], bool]) -> dict[str, Any] | None:
    """``call``'s object; ``None`` on the ``expected`` API error; 503 when the record store cannot be used."""
    try:
        return await call
    except KubeError as exc:
        if expected(exc):
            return None
        raise _unavailable(exc) from exc
    except aiohttp.ClientError as exc:
        raise _unavailable(exc) from exc


class KeyReservations:
    def __init__(self, kube: KubeClient, namespace: str, secret: bytes, *, holder: str = "",
                 ttl_s: float = 600.0, inflight_s: float = DEFAULT_STARTUP_TIMEOUT_S + 60.0,
                 poll_s: float = 0.1, sweep_interval_s: float = 60.0, sweep_batch: int = 500) -> None:
        if not 0 < inflight_s < ttl_s:
            raise ValueError("inflight_s must be positive and shorter than ttl_s")
        self.kube = kube
        self.namespace = namespace
        self.secret = secret
        self.holder = holder
        self.ttl_s = ttl_s
        self.inflight_s = inflight_s
        self.poll_s = poll_s
        self.sweep_interval_s = sweep_interval_s
        self.sweep_batch = sweep_batch

    async def run(self, scope: str, key: str, fingerprint: str, *, new_id: Callable[[], str],
                  produce: Callable[[str], Awaitable[Body]],
                  adopt: Callable[[str], Awaitable[Body | Orphan]]) -> Body:
        """The answer for (scope, key): produced here under a fresh id from ``new_id``, or the answer
        of the attempt that holds the key (waiting for it up to the in-flight bound). ``adopt`` turns
        the sandbox id of an abandoned attempt into its answer if that sandbox runs, else says why not."""
        name = lease_name(self.secret, scope, key)
        deadline = time.monotonic() + self.inflight_s
        while True:
            lease = await self._reserve(name, fingerprint, new_id())
            if lease is not None:
                return await self._produce(lease, produce)
            lease = await self._get(name)
            # No record: its holder gave the key up a moment ago, so the next round reserves it.
            if lease is not None:
                entry = Entry.of(lease)
                verdict = decide(entry, fingerprint, now_utc())
                if verdict is Verdict.MISMATCH:
                    raise conflict("Idempotency-Key was already used for a different request")
                if verdict is Verdict.DONE and entry.response is not None:
                    return entry.response
                if verdict is Verdict.EXPIRED:
                    await self._discard(lease)
                elif verdict is Verdict.ABANDONED:
                    body = await adopt(entry.sandbox_id)
                    if body is Orphan.GONE:
                        await self._discard(lease)
                    elif isinstance(body, dict) and await self._complete(lease, body):
                        log.info("adopted the sandbox of an abandoned create", sandbox_id=entry.sandbox_id)
                        return body
            if time.monotonic() >= deadline:
                raise ApiError(409, "a create with this Idempotency-Key is still in progress; retry later",
                               code="IdempotencyKeyInFlight")
            await asyncio.sleep(self.poll_s)

    async def _reserve(self, name: str, fingerprint: str, sandbox_id: str) -> dict[str, Any] | None:
        now = now_utc()
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {
                "name": name, "namespace": self.namespace,
                "labels": {LABEL_IDEMPOTENCY: "true", v.LABEL_MANAGED_BY: v.MANAGED_BY_VALUE},
                "annotations": {
                    ANN_FINGERPRINT: fingerprint, ANN_SANDBOX_ID: sandbox_id,
                    ANN_INFLIGHT_UNTIL: format_time(now + timedelta(seconds=self.inflight_s)),
                    ANN_EXPIRES_AT: format_time(now + timedelta(seconds=self.ttl_s)),
                },
            },
            "spec": {"holderIdentity": self.holder or None, "leaseDurationSeconds": int(self.inflight_s)},
        }
        return await _or_none(self.kube.create(leases_path(self.namespace), body), lambda exc: exc.conflict)

    async def _get(self, name: str) -> dict[str, Any] | None:
        return await _or_none(self.kube.get(leases_path(self.namespace, name)), lambda exc: exc.not_found)

    async def _produce(self, lease: dict[str, Any], produce: Callable[[str], Awaitable[Body]]) -> Body:
        sandbox_id = Entry.of(lease).sandbox_id
        try:
            body = await produce(sandbox_id)
        except BaseException:
            # Failed or abandoned by the caller: free the key for a fresh attempt.
            await asyncio.shield(self._discard(lease))
            raise
        if not await self._complete(lease, body):
            # The sandbox exists; a later duplicate adopts it once the in-flight bound has passed.
            log.warning("idempotency record not completed", sandbox_id=sandbox_id)
        return body

    async def _complete(self, lease: dict[str, Any], body: Body) -> bool:
        meta = lease.get("metadata") or {}
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                              "annotations": {ANN_RESPONSE: orjson.dumps(body).decode()}},
                 "spec": {"holderIdentity": self.holder or None}}
        try:
            await self.kube.merge_patch(leases_path(self.namespace, meta.get("name")), patch)
        except (KubeError, aiohttp.ClientError) as exc:
            log.warning("could not record the create's answer", lease=meta.get("name"), error=str(exc))
            return False
        return True

    async def _discard(self, lease: dict[str, Any]) -> None:
        """Delete this version of the record (a newer one — another attempt's — is left alone)."""
        meta = lease.get("metadata") or {}
        try:
            await self.kube.delete(leases_path(self.namespace, meta.get("name")),
                                   resource_version=meta.get("resourceVersion"))
        except aiohttp.ClientError as exc:
            log.warning("could not free an idempotency key", lease=meta.get("name"), error=str(exc))
        except KubeError as exc:
            if not (exc.not_found or exc.conflict):
                log.warning("could not free an idempotency key", lease=meta.get("name"), error=str(exc))

    # ---- garbage collection ------------------------------------------------------------------
    async def sweep(self) -> int:
        """Delete up to ``sweep_batch`` expired records; returns how many were deleted."""
        listing = await self.kube.list(leases_path(self.namespace), label_selector=f"{LABEL_IDEMPOTENCY}=true")
        now = now_utc()
        expired = [lease for lease in listing.get("items") or []
                   if decide(Entry.of(lease), "", now) is Verdict.EXPIRED][: self.sweep_batch]
        for lease in expired:
            await self._discard(lease)
        return len(expired)

    async def run_sweeper(self, is_leader: Callable[[], bool] = lambda: True) -> None:
        """Sweep forever while ``is_leader()`` (one replica sweeps; deletes are guarded by resourceVersion
        anyway, so a sweep during a leadership change is harmless); an unreachable apiserver only delays
        the next pass."""
        while True:
            try:
                removed = await self.sweep() if is_leader() else 0
                if removed:
                    log.info("expired idempotency records removed", count=removed)
            except Exception as exc:  # the loop must outlive any apiserver failure
                log.warning("idempotency sweep failed", error=str(exc))
            await asyncio.sleep(self.sweep_interval_s)
