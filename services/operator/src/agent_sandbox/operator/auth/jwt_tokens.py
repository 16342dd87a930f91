"""HS256 JWTs issued by a console backend that shares the operator's secret.

Claims: ``sub, name, email, role, team, authMethod, user``; role defaults to ``tenant`` and user to
``sub``. ``exp``/``nbf`` are honoured when present. Anything else (bad signature, other algorithm,
malformed) is the same 401 so the caller learns nothing about why.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from agent_sandbox.common.errors import unauthorized
from agent_sandbox.operator.auth.identity import Role

INVALID_JWT = "invalid or expired jwt token"


@dataclass(frozen=True, slots=True)
class JwtClaims:
    user: str
    team: str
    role: Role


def decode_jwt(token: str, secret: bytes) -> JwtClaims:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": []}, leeway=5)
    except jwt.PyJWTError as exc:
        raise unauthorized(INVALID_JWT) from exc
    if not isinstance(claims, dict):
        raise unauthorized(INVALID_JWT)
    user = str(claims.get("user") or claims.get("sub") or "")
    try:
        role = Role(str(claims.get("role") or Role.TENANT.value))
    except ValueError as exc:
        raise unauthorized(INVALID_JWT) from exc
    if not user:
        raise unauthorized(INVALID_JWT)
    return JwtClaims(user=user, team=str(claims.get("team") or ""), role=role)
