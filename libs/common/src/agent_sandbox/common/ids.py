"""Sandbox ids: ``<cluster-id>-<26-char lowercase ULID>``.

The id must be a DNS label (it is used as a label value and inside the E2B host
name ``<port>-<id>.<domain>``, one 63-char DNS label), must say which cluster
owns the sandbox so any cluster can forward a request to the right one, and is
time-ordered so listings sort by creation without another field. The local part
is a ULID in lower-case Crockford base32; parsing takes the last 26 characters
as the local id and everything before the final ``-`` as the cluster id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ulid import ULID

LOCAL_ID_LEN = 26
MAX_SANDBOX_ID_LEN = 48
#: A cluster id is a DNS label short enough that ``<cluster>-<26 chars>`` stays within 48 characters.
MAX_CLUSTER_ID_LEN = MAX_SANDBOX_ID_LEN - LOCAL_ID_LEN - 1

_CLUSTER_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_LOCAL_RE = re.compile(r"^[0-7][0-9a-hjkmnp-tv-z]{25}$")


class InvalidSandboxId(ValueError):
    """Raised for a string that is not a well-formed sandbox id."""


@dataclass(frozen=True, slots=True)
class SandboxId:
    cluster_id: str
    local_id: str

    def __str__(self) -> str:
        return f"{self.cluster_id}-{self.local_id}"

    @property
    def created_at(self) -> datetime:
        """Creation time encoded in the ULID (millisecond precision, UTC)."""
        return ULID.from_str(self.local_id.upper()).datetime


def validate_cluster_id(cluster_id: str) -> str:
    if not cluster_id or len(cluster_id) > MAX_CLUSTER_ID_LEN or not _CLUSTER_RE.match(cluster_id):
        raise InvalidSandboxId(
            f"cluster id {cluster_id!r} must be a DNS label of 1-{MAX_CLUSTER_ID_LEN} characters "
            "([a-z0-9-], starting and ending alphanumeric)"
        )
    return cluster_id


def new_sandbox_id(cluster_id: str) -> str:
    """A fresh, time-ordered sandbox id in ``cluster_id``."""
    validate_cluster_id(cluster_id)
    return f"{cluster_id}-{str(ULID()).lower()}"


def parse_sandbox_id(value: str) -> SandboxId:
    """Split and validate a sandbox id; raises :class:`InvalidSandboxId`."""
    if not isinstance(value, str) or len(value) > MAX_SANDBOX_ID_LEN:
        raise InvalidSandboxId(f"sandbox id must be a string of at most {MAX_SANDBOX_ID_LEN} characters")
    if len(value) < LOCAL_ID_LEN + 2 or value[-LOCAL_ID_LEN - 1] != "-":
        raise InvalidSandboxId(f"sandbox id {value!r} is not of the form <cluster-id>-<26-char id>")
    cluster_id, local_id = value[: -LOCAL_ID_LEN - 1], value[-LOCAL_ID_LEN:]
    validate_cluster_id(cluster_id)
    if not _LOCAL_RE.match(local_id):
        raise InvalidSandboxId(f"sandbox id {value!r} has a malformed local part {local_id!r}")
    return SandboxId(cluster_id=cluster_id, local_id=local_id)


def is_sandbox_id(value: str) -> bool:
    try:
        parse_sandbox_id(value)
    except InvalidSandboxId:
        return False
    return True
