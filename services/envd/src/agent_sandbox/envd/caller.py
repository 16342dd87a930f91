"""Who an RPC acts as: the account from the ``Authorization`` header or the default user."""

from __future__ import annotations

from connectrpc.request import RequestContext

from .auth import basic_auth_user
from .state import EnvdState
from .users import Account, lookup


def caller_account(ctx: RequestContext, state: EnvdState) -> Account:
    requested = basic_auth_user(ctx.request_headers.get("authorization"))
    return lookup(requested or state.default_user, default_name=state.default_user)


def keepalive_interval(ctx: RequestContext, default: float = 90.0) -> float:
    """Seconds between keepalive events (header ``Keepalive-Ping-Interval``, clamped to 1..3600)."""
    raw = ctx.request_headers.get("keepalive-ping-interval")
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = default
    return min(max(value, 1.0), 3600.0)
