"""Offset/limit paging of list envelopes (``{items, total, limit, offset}``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def page(items: Sequence[T], limit: int, offset: int) -> dict[str, Any]:
    return {"items": list(items[offset:offset + limit]), "total": len(items), "limit": limit, "offset": offset}
