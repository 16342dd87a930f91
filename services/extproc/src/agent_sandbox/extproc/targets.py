"""Which sandbox and port a data-plane request is for.

Clients name the target in one of four ways, tried in this order: the E2B SDK
(>= 2.7) headers ``E2b-Sandbox-Id``/``E2b-Sandbox-Port``, our own
``x-sandbox-id``/``x-sandbox-port``, a path ``[prefix]/sandboxes/<id>/<port>/rest``
(the path is rewritten to ``/rest``), and the E2B host form ``<port>-<id>.<domain>``
(browsers and SDKs < 2.7). Pure functions over a lower-cased header map: this
runs once per request, so it avoids regexes where a string split will do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from agent_sandbox.common.vocabulary import ENVD_PORT


class Form(Enum):
    """How the target was named; E2B forms get E2B-shaped error bodies."""

    E2B_HEADER = "e2b-header"
    HEADER = "header"
    PATH = "path"
    HOST = "host"

    @property
    def is_e2b(self) -> bool:
        return self is Form.E2B_HEADER or self is Form.HOST


@dataclass(frozen=True, slots=True)
class Target:
    sandbox_id: str
    port: int
    form: Form
    #: The rewritten ``:path`` (path form only); ``None`` leaves the path unchanged.
    path: str | None = None


class TargetError(ValueError):
    """The request names no target or a malformed one (answered 400)."""


_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_RE = re.compile(r"^(\d+)-([a-z0-9-]+)\.")
_SEGMENT = "sandboxes/"
NO_TARGET_HINT = (
    "no sandbox target: send headers E2b-Sandbox-Id (+ E2b-Sandbox-Port, default 49983) or "
    "x-sandbox-id + x-sandbox-port, or use the path /sandboxes/<id>/<port>/..., "
    "or the host <port>-<id>.<domain>"
)


def _check_id(value: str, source: str) -> str:
    if not _ID_RE.match(value):
        raise TargetError(f"invalid sandbox id {value[:80]!r} in {source}: expected a lower-case DNS label")
    return value


def _parse_port(value: str, source: str) -> int:
    if not value.isdigit() or len(value) > 5 or not 1 <= int(value) <= 65535:
        raise TargetError(f"invalid port {value[:20]!r} in {source}: expected an integer 1-65535")
    return int(value)


def _from_path(raw_path: str) -> Target | None:
    path, sep, query = raw_path.partition("?")
    if path.startswith("/" + _SEGMENT):
        start = len(_SEGMENT) + 1
    else:
        idx = path.find("/" + _SEGMENT)
        if idx < 0:
            return None
        start = idx + len(_SEGMENT) + 1
    parts = path[start:].split("/", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise TargetError("path form is /sandboxes/<id>/<port>/...: sandbox id or port missing")
    sandbox_id = _check_id(parts[0], "path")
    port = _parse_port(parts[1], "path")
    rest = "/" + parts[2] if len(parts) == 3 else "/"
    return Target(sandbox_id, port, Form.PATH, rest + sep + query)


def extract_target(headers: dict[str, str]) -> Target:
    """The target of a request; raises :class:`TargetError` with a user-facing message."""
    e2b_id = headers.get("e2b-sandbox-id")
    if e2b_id:
        port_value = headers.get("e2b-sandbox-port")
        port = _parse_port(port_value, "E2b-Sandbox-Port") if port_value else ENVD_PORT
        return Target(_check_id(e2b_id, "E2b-Sandbox-Id"), port, Form.E2B_HEADER)
    sid = headers.get("x-sandbox-id")
    sport = headers.get("x-sandbox-port")
    if sid or sport:
        if not sid:
            raise TargetError("x-sandbox-port given without x-sandbox-id")
        if not sport:
            raise TargetError("x-sandbox-id given without x-sandbox-port (1-65535)")
        return Target(_check_id(sid, "x-sandbox-id"), _parse_port(sport, "x-sandbox-port"), Form.HEADER)
    path = headers.get(":path", "")
    if _SEGMENT in path:
        target = _from_path(path)
        if target is not None:
            return target
    host = (headers.get(":authority") or headers.get("host") or "").lower()
    m = _HOST_RE.match(host)
    if m:
        return Target(_check_id(m.group(2), "host"), _parse_port(m.group(1), "host"), Form.HOST)
    raise TargetError(NO_TARGET_HINT)
