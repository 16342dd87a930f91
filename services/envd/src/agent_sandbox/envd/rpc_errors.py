"""Map envd's domain errors onto Connect errors with the codes the SDK branches on."""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from .auth import AuthError
from .paths import PathError
from .processes import ProcessError
from .users import UserError
from .watchers import WatchError

_KIND_CODES = {
    "not_found": Code.NOT_FOUND,
    "invalid_argument": Code.INVALID_ARGUMENT,
    "resource_exhausted": Code.RESOURCE_EXHAUSTED,
    "internal": Code.INTERNAL,
}


def to_connect_error(exc: Exception) -> ConnectError:
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, ProcessError | WatchError):
        return ConnectError(_KIND_CODES.get(exc.kind, Code.INTERNAL), str(exc))
    if isinstance(exc, AuthError):
        return ConnectError(Code.UNAUTHENTICATED, str(exc))
    if isinstance(exc, UserError):
        return ConnectError(Code.PERMISSION_DENIED, str(exc))
    if isinstance(exc, PathError):
        return ConnectError(Code.INVALID_ARGUMENT, str(exc))
    return ConnectError(Code.INTERNAL, str(exc))
