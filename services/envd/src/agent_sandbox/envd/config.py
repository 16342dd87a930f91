"""envd's start-up configuration: flags over ``AGENT_SANDBOX_ENVD_*`` environment over defaults.

Kept to a dataclass and plain parsing (no pydantic-settings) because envd runs in
every sandbox and its idle memory matters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_LISTEN = "0.0.0.0:49983"


class ConfigError(ValueError):
    """Invalid configuration; the message says which value and why."""


@dataclass(frozen=True, slots=True)
class EnvdConfig:
    host: str
    port: int
    access_token: str | None
    default_user: str


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (all interfaces) → (host, port)."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep:
        raise ConfigError(f"listen address {value!r} must be HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"listen address {value!r} has an invalid port") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"listen port {port} is out of range")
    return host or "0.0.0.0", port


def load_config(listen: str | None, default_user: str | None, environ: Mapping[str, str] = os.environ) -> EnvdConfig:
    host, port = parse_listen(listen or environ.get("AGENT_SANDBOX_ENVD_LISTEN") or DEFAULT_LISTEN)
    return EnvdConfig(
        host=host,
        port=port,
        access_token=environ.get("AGENT_SANDBOX_ENVD_ACCESS_TOKEN") or None,
        default_user=default_user or environ.get("AGENT_SANDBOX_ENVD_DEFAULT_USER") or "user",
    )
