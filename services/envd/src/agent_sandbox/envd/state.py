"""What the orchestrator told envd through ``POST /init``, and its validation.

The operator's post-start hook sends the sandbox's env vars, its access token,
the default user and working directory. They live here, shared by the RPC
services and the HTTP routes. Validation is hand-written (no pydantic): envd runs
in every sandbox and pydantic alone would cost ~16 MB of resident memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_ENV_VARS = 4096
MAX_ENV_BYTES = 1 << 20


class InitError(ValueError):
    """The ``/init`` body is invalid; the message is safe to show to the caller."""


@dataclass(slots=True)
class InitRequest:
    """The fields of ``/init`` that envd acts on (others, e.g. ``timestamp``, are accepted and ignored)."""

    env_vars: dict[str, str] | None = None
    access_token: str | None = None
    default_user: str | None = None
    default_workdir: str | None = None


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InitError(f"{key} must be a string")
    return value


def parse_init(body: Any) -> InitRequest:
    """Validate a decoded ``/init`` JSON body."""
    if body is None:
        return InitRequest()
    if not isinstance(body, dict):
        raise InitError("body must be a JSON object")
    env_vars = body.get("envVars")
    if env_vars is not None:
        if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
        ):
            raise InitError("envVars must be an object of string values")
        if len(env_vars) > MAX_ENV_VARS:
            raise InitError(f"envVars holds more than {MAX_ENV_VARS} entries")
        if sum(len(k) + len(v) for k, v in env_vars.items()) > MAX_ENV_BYTES:
            raise InitError(f"envVars exceed {MAX_ENV_BYTES} bytes")
        for name in env_vars:
            if not name or "=" in name or "\x00" in name:
                raise InitError(f"invalid environment variable name {name!r}")
        if any("\x00" in v for v in env_vars.values()):
            raise InitError("environment variable values must not contain NUL bytes")
    workdir = _optional_str(body, "defaultWorkdir")
    if workdir is not None and not workdir.startswith("/"):
        raise InitError("defaultWorkdir must be an absolute path")
    return InitRequest(
        env_vars=env_vars,
        access_token=_optional_str(body, "accessToken"),
        default_user=_optional_str(body, "defaultUser") or None,
        default_workdir=workdir or None,
    )


@dataclass(slots=True)
class EnvdState:
    """Mutable daemon state; every request reads it, only ``/init`` writes it."""

    access_token: str | None = None
    default_user: str = "user"
    default_workdir: str | None = None
    env_vars: dict[str, str] = field(default_factory=dict)
    initialized: bool = False

    def apply_init(self, init: InitRequest) -> None:
        if init.env_vars is not None:
            self.env_vars = dict(init.env_vars)
        if init.access_token is not None:
            self.access_token = init.access_token or None
        if init.default_user is not None:
            self.default_user = init.default_user
        if init.default_workdir is not None:
            self.default_workdir = init.default_workdir
        self.initialized = True
