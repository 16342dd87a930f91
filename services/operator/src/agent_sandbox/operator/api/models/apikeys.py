"""API-key routes of the native API (behaviour.md §15.4, §15.6): self-service and admin."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from agent_sandbox.operator.api.models.common import Page, RequestModel, ResponseModel
from agent_sandbox.operator.auth.identity import Role

_NAME = Field(default=None, min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$")


class SelfCreateAPIKeyRequest(RequestModel):
    description: str | None = Field(default=None, max_length=1024)
    expiresAt: datetime | None = None


class CreateAPIKeyRequest(RequestModel):
    """Admin create; ``tokenHash`` + ``hashPrefix`` import a key created elsewhere (only its hash travels)."""

    user: str | None = _NAME
    team: str | None = _NAME
    namespace: str | None = Field(default=None, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    role: Role = Role.TENANT
    description: str | None = Field(default=None, max_length=1024)
    quotaURL: str | None = Field(default=None, max_length=2048)
    expiresAt: datetime | None = None
    tokenHash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    hashPrefix: str | None = Field(default=None, pattern=r"^[0-9a-f]{8,64}$")

    @model_validator(mode="after")
    def _identity(self) -> CreateAPIKeyRequest:
        if self.role == Role.TENANT and not (self.user and self.team):
            raise ValueError("tenant keys need both user and team")
        if (self.tokenHash is None) != (self.hashPrefix is None):
            raise ValueError("tokenHash and hashPrefix must be given together")
        if self.tokenHash and self.hashPrefix and not self.tokenHash.startswith(self.hashPrefix):
            raise ValueError("hashPrefix must be a prefix of tokenHash")
        return self


class CreateAPIKeyResult(ResponseModel):
    apiKey: str | None = Field(default=None, description="the raw key; shown only once, absent for imports")
    keyId: str
    user: str | None = None
    team: str | None = None
    role: Role
    namespace: str | None = None
    description: str | None = None
    issuedAt: datetime
    expiresAt: datetime | None = None


class APIKeyItem(ResponseModel):
    keyId: str
    user: str | None = None
    team: str | None = None
    role: Role
    namespace: str | None = None
    quotaURL: str | None = None
    description: str | None = None
    issuedAt: datetime | None = None
    expiresAt: datetime | None = None
    syncSource: str | None = None


class APIKeyList(Page):
    items: list[APIKeyItem]


class AdminListAPIKeysQuery(RequestModel):
    namespace: str | None = Field(default=None, max_length=63)
    limit: int = Field(20, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)


class DeleteAPIKeyResponse(ResponseModel):
    keyId: str
    status: str
