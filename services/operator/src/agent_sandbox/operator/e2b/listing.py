"""``GET /v2/sandboxes`` query handling: metadata, state, template and start-time filters, ordering,
opaque page tokens.

The SDK sends ``metadata`` as one URL-encoded ``k1=v1&k2=v2`` string, ``state`` comma-joined,
``template`` as a template id, ``startedAfter`` as an ISO 8601 date-time with an offset
(``datetime.isoformat()`` of an aware time; "at or after"), and pages with ``nextToken``; we answer
``x-next-token`` only when another page exists. The token is the offset of the next page,
base64url-encoded so clients treat it as opaque. Pure functions.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from agent_sandbox.common.errors import bad_request
from agent_sandbox.operator.e2b.templates import parse_template_id
from agent_sandbox.operator.timeutil import parse_time

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
STATES = frozenset({"running", "paused"})
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ListQuery:
    metadata: dict[str, str]
    states: frozenset[str]
    limit: int
    offset: int
    descending: bool
    template: str | None = None
    started_after: datetime | None = None


def parse_metadata(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        return dict(parse_qsl(raw, keep_blank_values=True, strict_parsing=True, max_num_fields=64))
    except ValueError as exc:
        raise bad_request("metadata must be a URL-encoded query string such as 'user=abc&app=prod'") from exc


def parse_started_after(raw: str | None) -> datetime | None:
    if not raw:
        return None
    # An unencoded "+" of the offset arrives as a space.
    text = raw.strip().replace(" ", "+")
    if "T" not in text or not any(c in text[10:] for c in "Z+-"):
        raise bad_request("startedAfter must be an ISO 8601 date-time with a time zone, "
                          "e.g. 2026-01-01T12:00:00+00:00")
    parsed = parse_time(text)
    if parsed is None:
        raise bad_request(f"startedAfter {raw!r} is not an ISO 8601 date-time such as 2026-01-01T12:00:00+00:00")
    return parsed


def parse_template_filter(raw: str | None) -> str | None:
    """The pool name a ``template`` filter selects (listed sandboxes carry the pool name as templateID)."""
    if not raw:
        return None
    return parse_template_id(raw).pool


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad_request("nextToken is not a token this server issued") from exc
    kind, _, value = text.partition(":")
    if kind != "o" or not value.isdigit() or len(value) > 9:
        raise bad_request("nextToken is not a token this server issued")
    return int(value)


def parse_list_query(query: dict[str, str]) -> ListQuery:
    states = frozenset(s.strip() for s in (query.get("state") or "").split(",") if s.strip()) or STATES
    unknown = states - STATES
    if unknown:
        raise bad_request(f"state must be running and/or paused, not {', '.join(sorted(unknown))}")
    limit_raw = query.get("limit")
    if limit_raw is None or limit_raw == "":
        limit = DEFAULT_LIMIT
    elif limit_raw.isdigit() and 1 <= int(limit_raw) <= MAX_LIMIT:
        limit = int(limit_raw)
    else:
        raise bad_request(f"limit must be a whole number between 1 and {MAX_LIMIT}")
    order = (query.get("order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise bad_request("order must be asc or desc")
    token = query.get("nextToken")
    return ListQuery(parse_metadata(query.get("metadata")), states, limit,
                     decode_token(token) if token else 0, order == "desc",
                     template=parse_template_filter(query.get("template")),
                     started_after=parse_started_after(query.get("startedAfter")))


def select_page(items: Sequence[dict[str, Any]], q: ListQuery) -> tuple[list[dict[str, Any]], str | None]:
    """Filter ``items`` (ListedSandbox dicts) by metadata, state, template and start, order by start,
    cut one page."""
    matching = [
        it for it in items
        if it.get("state", "running") in q.states
        and all((it.get("metadata") or {}).get(k) == val for k, val in q.metadata.items())
        and (q.template is None or it.get("templateID") == q.template)
        and (q.started_after is None or _started(it) >= q.started_after)
    ]
    matching.sort(key=lambda it: (str(it.get("startedAt", "")), it.get("sandboxID", "")), reverse=q.descending)
    page = matching[q.offset:q.offset + q.limit]
    more = q.offset + q.limit < len(matching)
    return page, encode_token(q.offset + q.limit) if more else None


def _started(item: dict[str, Any]) -> datetime:
    return parse_time(str(item.get("startedAt", ""))) or _NEVER
