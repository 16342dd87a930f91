"""Kubernetes ``Status`` errors.

Every failure the API server reports is a ``Status`` object with the HTTP code,
``reason`` and ``details`` real clients switch on (kubernetes_asyncio raises
``ApiException(status)``, kubectl prints ``message``). Handlers raise
:class:`StatusError`; the HTTP shell renders it, so no request ends in a 500
with a stack trace.
"""

from __future__ import annotations

from typing import Any


class StatusError(Exception):
    """A request failure rendered as a Kubernetes ``Status``."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> StatusError:
    return StatusError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        {"name": name, "group": group, "kind": resource},
    )


def already_exists(resource: str, group: str, name: str) -> StatusError:
    return StatusError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        {"name": name, "group": group, "kind": resource},
    )


def conflict(resource: str, group: str, name: str, why: str | None = None) -> StatusError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        {"name": name, "group": group, "kind": resource},
    )


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> StatusError:
    """422 Invalid with one cause per offending field (``{"field", "message", "reason"}``)."""
    summary = "; ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes)
    return StatusError(
        422,
        "Invalid",
        f'{_qualified(kind, group)} "{name}" is invalid: {summary}',
        {"name": name, "group": group, "kind": kind, "causes": causes},
    )


def cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def unprocessable(message: str) -> StatusError:
    return StatusError(422, "Invalid", message)


def expired(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def forbidden(message: str) -> StatusError:
    return StatusError(403, "Forbidden", message)


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                       f"accepted media types include: application/json-patch+json, "
                       f"application/merge-patch+json, application/apply-patch+yaml; got {content_type!r}")


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", message)
