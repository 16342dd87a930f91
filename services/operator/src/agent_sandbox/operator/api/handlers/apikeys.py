"""API-key routes: self-service (your own keys) and admin (everyone's, plus hash imports)."""

from __future__ import annotations

from datetime import datetime

from agent_sandbox.common.errors import bad_request, forbidden
from agent_sandbox.operator.api.context import Call, Reply
from agent_sandbox.operator.api.handlers.paging import page
from agent_sandbox.operator.api.models.apikeys import (
    APIKeyItem,
    APIKeyList,
    CreateAPIKeyRequest,
    CreateAPIKeyResult,
    DeleteAPIKeyResponse,
    SelfCreateAPIKeyRequest,
)
from agent_sandbox.operator.api.models.common import StringList
from agent_sandbox.operator.auth.identity import Role
from agent_sandbox.operator.auth.keys import KeyRecord, secret_name
from agent_sandbox.operator.timeutil import now_utc


def _item(rec: KeyRecord) -> APIKeyItem:
    return APIKeyItem(keyId=rec.name, user=rec.user or None, team=rec.team or None, role=rec.role,
                      namespace=rec.namespace or None, quotaURL=rec.quota_url or None,
                      description=rec.description or None, issuedAt=rec.issued_at, expiresAt=rec.expires_at,
                      syncSource=rec.sync_source or None)


def _result(rec: KeyRecord, raw: str | None) -> CreateAPIKeyResult:
    return CreateAPIKeyResult(apiKey=raw, keyId=rec.name, user=rec.user or None, team=rec.team or None,
                              role=rec.role, namespace=rec.namespace or None, description=rec.description or None,
                              issuedAt=rec.issued_at or now_utc(), expiresAt=rec.expires_at)


def _future(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise bad_request("expiresAt must carry a time zone (RFC 3339)")
        if expires_at <= now_utc():
            raise bad_request("expiresAt must be in the future")
    return expires_at


async def self_create(call: Call) -> Reply:
    req: SelfCreateAPIKeyRequest = call.body
    ident = call.identity
    if not ident.user:
        raise forbidden("these credentials have no user to own a key")
    if not ident.is_admin and not ident.team:
        raise forbidden("these credentials have no team to own a key")
    raw, rec = await call.deps.keys.create(
        role=ident.role, namespace=ident.namespace, user=ident.user, team=ident.team,
        description=req.description or "", expires_at=_future(req.expiresAt))
    return Reply(201, _result(rec, raw))


async def _own(call: Call) -> list[KeyRecord]:
    return await call.deps.keys.list(user=call.identity.user, team=call.identity.team)


async def self_list(call: Call) -> Reply:
    items = [_item(r) for r in await _own(call)]
    return Reply(200, APIKeyList.model_validate(page(items, call.query.limit, call.query.offset)))


async def self_delete(call: Call) -> Reply:
    name = call.path("name")
    rec = await call.deps.keys.get(name)
    if rec.user != call.identity.user or rec.team != call.identity.team:
        raise forbidden("this api key is not yours")
    await call.deps.keys.delete(name)
    return Reply(200, DeleteAPIKeyResponse(keyId=name, status="Deleted"))


async def admin_create(call: Call) -> Reply:
    req: CreateAPIKeyRequest = call.body
    expires = _future(req.expiresAt)
    if req.tokenHash:
        rec = await call.deps.keys.import_hash(KeyRecord(
            name=secret_name(req.tokenHash), token_hash=req.tokenHash, role=req.role,
            namespace=req.namespace or "", user=req.user or "", team=req.team or "",
            quota_url=req.quotaURL or "", description=req.description or "", expires_at=expires))
        return Reply(201, _result(rec, None))
    raw, rec = await call.deps.keys.create(
        role=req.role, namespace=req.namespace or "", user=req.user or "", team=req.team or "",
        description=req.description or "", quota_url=req.quotaURL or "", expires_at=expires)
    return Reply(201, _result(rec, raw))


async def admin_list(call: Call) -> Reply:
    records = await call.deps.keys.list(namespace=call.query.namespace)
    return Reply(200, APIKeyList.model_validate(page([_item(r) for r in records], call.query.limit,
                                                     call.query.offset)))


async def admin_delete(call: Call) -> Reply:
    rec = await call.deps.keys.delete(call.path("name"))
    return Reply(200, DeleteAPIKeyResponse(keyId=rec.name, status="Deleted"))


async def list_teams(call: Call) -> Reply:
    teams = sorted({r.team for r in await call.deps.keys.list() if r.team})
    return Reply(200, StringList(items=teams, total=len(teams)))


async def list_users(call: Call) -> Reply:
    team = call.path("team")
    users = sorted({r.user for r in await call.deps.keys.list(team=team) if r.user and r.role is Role.TENANT})
    return Reply(200, StringList(items=users, total=len(users)))


HANDLERS = {
    "SelfCreateAPIKey": self_create,
    "SelfListAPIKeys": self_list,
    "SelfDeleteAPIKey": self_delete,
    "CreateAPIKey": admin_create,
    "ListAPIKeys": admin_list,
    "DeleteAPIKey": admin_delete,
    "ListTeams": list_teams,
    "ListUsersByTeam": list_users,
}
