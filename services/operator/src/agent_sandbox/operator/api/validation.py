"""Parse request bodies and query strings into the route's pydantic model, or answer 400.

The 400 names every offending field (``detail: [{field, message}]``) and never echoes the input back,
so a secret pasted into the wrong field does not bounce into logs or error pages.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from agent_sandbox.common.errors import bad_request

M = TypeVar("M", bound=BaseModel)


def validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_input=False, include_url=False)
    ]


def parse_model(model: type[M], data: object, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        detail = validation_detail(exc)
        first = detail[0] if detail else {"field": what, "message": "invalid"}
        raise bad_request(f"invalid {what}: {first['field']}: {first['message']}", code="ValidationFailed",
                          detail=detail) from exc


async def read_json(request: web.Request, *, required: bool = True) -> object:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise bad_request("request body is required (JSON)")
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"request body is not valid JSON: {exc.msg}") from exc


async def read_body(request: web.Request, model: type[M]) -> M:
    return parse_model(model, await read_json(request), "request body")


def read_query(request: web.Request, model: type[M]) -> M:
    """Query parameters known to ``model`` (others are ignored, like cache busters)."""
    known = model.model_fields
    data = {k: request.query.getall(k)[-1] for k in request.query if k in known}
    return parse_model(model, data, "query")
