"""Shapes shared by every native route: the error body, list envelopes, paging and path parameters.

Request models forbid unknown fields (a typo in a field name is a 400 that names the field, not a
silently ignored option); response models are what the handlers serialise, and the OpenAPI document
is generated from these same classes, so the document and the server cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Go-style duration string, as in the CRDs (``"90s"``, ``"2m"``, ``"1h30m"``, ``"0"``).
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"
#: Kubernetes object name used for pools (DNS-1035 label).
POOL_NAME_PATTERN = r"^[a-z]([a-z0-9-]*[a-z0-9])?$"
#: Pool reference: a local pool name, or ``<cluster-id>::<pool>`` for a pool in another cluster.
POOL_REF_PATTERN = r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?::)?[a-z]([a-z0-9-]*[a-z0-9])?$"


class RequestModel(BaseModel):
    """Base of every request body and query model: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ResponseModel(BaseModel):
    """Base of every response body model."""

    model_config = ConfigDict(populate_by_name=True)


class ErrorResponse(ResponseModel):
    """Every native-API error: ``error`` always, ``errorCode`` for business codes, ``detail`` for context."""

    error: str
    errorCode: str | None = None
    detail: Any | None = None


class PageQuery(RequestModel):
    limit: int = Field(20, ge=1, le=1000, description="page size")
    offset: int = Field(0, ge=0, le=1_000_000, description="items to skip")


class Page(ResponseModel):
    total: int
    limit: int
    offset: int


class StringList(ResponseModel):
    items: list[str]
    total: int


class PoolStatusDetail(ResponseModel):
    """``detail`` of a 429 "no idle sandboxes": where the pool stands and when to retry."""

    idle: int
    running: int
    starting: int
    stopping: int
    failed: int
    hint: str | None = None
    retryAfter: int | None = None


class AvailablePool(ResponseModel):
    name: str
    namespace: str
    idle: int = 0
    running: int = 0
    starting: int = 0


class AvailablePoolsDetail(ResponseModel):
    """``detail`` of a 404 for an unknown pool: the pools the caller could have meant."""

    availablePools: list[AvailablePool]
    hint: str | None = None
