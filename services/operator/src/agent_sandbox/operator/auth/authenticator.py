"""Turn request headers into an :class:`Identity` (behaviour.md §15.2, §16 "Auth").

Order: a credential from ``X-API-Key`` or ``Authorization: Bearer``; the admin key (constant-time);
an ``asb_``/``e2b_`` key from the key store; otherwise, when a JWT secret is configured and the API
allows it, an HS256 JWT. Without an admin key the authenticator refuses to exist unless development
mode is explicitly enabled, and then logs loudly; in development mode a request *without* credentials
is an anonymous admin, while a request *with* credentials is still checked.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from agent_sandbox.common import apikeys
from agent_sandbox.common.errors import ApiError, unauthorized
from agent_sandbox.common.logging import get_logger
from agent_sandbox.operator.auth.iam import NamespaceResolver
from agent_sandbox.operator.auth.identity import ADMIN, DEV, AuthMethod, Identity, Role
from agent_sandbox.operator.auth.jwt_tokens import decode_jwt
from agent_sandbox.operator.auth.keystore import ApiKeyStore

log = get_logger(__name__)

IMPERSONATE_TEAM = "X-Impersonate-Team"
IMPERSONATE_USER = "X-Impersonate-User"


class InsecureConfiguration(RuntimeError):
    """Refusing to run without credentials (no admin key and development mode not enabled)."""


def extract_credential(headers: Mapping[str, str]) -> tuple[str | None, bool]:
    """The caller's credential and whether it came as a Bearer token."""
    key = (headers.get("X-API-Key") or "").strip()
    if key:
        return key, False
    auth = (headers.get("Authorization") or "").strip()
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), True
    return None, False


class Authenticator:
    def __init__(self, *, admin_key: str, keys: ApiKeyStore, resolver: NamespaceResolver,
                 jwt_secret: bytes | None = None, dev_mode: bool = False) -> None:
        if not admin_key and not dev_mode:
            raise InsecureConfiguration(
                "no admin key configured: set --admin-key / AGENT_SANDBOX_ADMIN_KEY, or enable development mode "
                "explicitly to accept unauthenticated callers as admin"
            )
        if not admin_key:
            log.warning("DEVELOPMENT MODE: no admin key; requests without credentials are treated as admin. "
                        "Never run like this where anyone else can reach the API.")
        self._admin_key = admin_key.encode()
        self.keys = keys
        self.resolver = resolver
        self._jwt_secret = jwt_secret or None
        self.dev_mode = not admin_key

    async def authenticate(self, headers: Mapping[str, str], *, allow_jwt: bool = True,
                           allow_impersonation: bool = True) -> Identity:
        credential, bearer = extract_credential(headers)
        if credential is None:
            if self.dev_mode:
                return DEV
            raise unauthorized("missing api key")
        identity = await self._identify(credential, bearer and allow_jwt)
        if allow_impersonation and identity.is_admin:
            identity = await self._impersonate(identity, headers)
        return identity

    async def _identify(self, credential: str, try_jwt: bool) -> Identity:
        if self._admin_key and hmac.compare_digest(credential.encode(), self._admin_key):
            return ADMIN
        if _looks_like_key(credential):
            record = await self.keys.validate(credential)
            if record.role is Role.ADMIN:
                return Identity(record.namespace or "default", Role.ADMIN, record.user or "admin", record.team,
                                AuthMethod.API_KEY, record.name)
            if not (record.team and record.user):
                raise unauthorized("api key has no team or user")
            namespace = record.namespace or await self._resolve(record.team, record.user)
            return Identity(namespace, Role.TENANT, record.user, record.team, AuthMethod.API_KEY, record.name)
        if try_jwt and self._jwt_secret:
            claims = decode_jwt(credential, self._jwt_secret)
            namespace = await self._resolve(claims.team, claims.user)
            return Identity(namespace, claims.role, claims.user, claims.team, AuthMethod.JWT)
        raise unauthorized("invalid api key")

    async def _impersonate(self, identity: Identity, headers: Mapping[str, str]) -> Identity:
        team = (headers.get(IMPERSONATE_TEAM) or "").strip()
        user = (headers.get(IMPERSONATE_USER) or "").strip()
        if not (team and user):
            return identity
        namespace = await self._resolve(team, user)
        log.info("admin impersonation", admin=identity.user, team=team, user=user, namespace=namespace)
        return Identity(namespace, Role.TENANT, user, team, AuthMethod.IMPERSONATION)

    async def _resolve(self, team: str, user: str) -> str:
        try:
            return await self.resolver.resolve(team, user)
        except Exception as exc:
            log.warning("namespace resolution failed", team=team, user=user, error=str(exc))
            raise ApiError(503, "cannot resolve the tenant namespace right now; retry", code="Unavailable") from exc


def _looks_like_key(credential: str) -> bool:
    try:
        apikeys.key_secret(credential)
    except apikeys.InvalidApiKey:
        return False
    return True
