"""The authenticated caller: role, user, team and the namespace their sandboxes live in."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_NAMESPACE = "default"


class Role(StrEnum):
    ADMIN = "admin"
    TENANT = "tenant"


class AuthMethod(StrEnum):
    ADMIN_KEY = "admin-key"
    API_KEY = "api-key"
    JWT = "jwt"
    DEV = "dev"
    IMPERSONATION = "impersonation"


@dataclass(frozen=True, slots=True)
class Identity:
    namespace: str
    role: Role
    user: str
    team: str
    method: AuthMethod
    #: Secret name of the API key used, when one was.
    key_id: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


ADMIN = Identity(DEFAULT_NAMESPACE, Role.ADMIN, "admin", "admin", AuthMethod.ADMIN_KEY)
DEV = Identity(DEFAULT_NAMESPACE, Role.ADMIN, "anonymous-admin", "", AuthMethod.DEV)
