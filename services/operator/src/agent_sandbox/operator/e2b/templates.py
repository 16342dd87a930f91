"""The E2B ``templateID`` grammar and the reserved metadata keys (behaviour.md §16).

``templateID = [clusterID::]poolName[//imageOverride]``: split on the first ``//`` (image references
contain ``/`` and ``:``), then on ``::``. Reserved metadata keys steer the claim and are consumed here,
never stored as caller metadata. Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent_sandbox.common.errors import bad_request

META_IMAGE = "agentsandbox.io/image"
META_STARTUP_TIMEOUT = "agentsandbox.io/startup-timeout"
META_NO_WAIT = "agentsandbox.io/no-wait"
META_SCALING_GROUP = "agentsandbox.io/scaling-group"
RESERVED_PREFIX = "agentsandbox.io/"

_POOL_RE = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_CLUSTER_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?$")
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,510}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
MAX_STARTUP_TIMEOUT = 3600


@dataclass(frozen=True, slots=True)
class TemplateRef:
    pool: str
    cluster: str = ""
    image: str = ""


@dataclass(frozen=True, slots=True)
class ClaimOptions:
    """What the reserved keys ask for, and the caller metadata that remains."""

    image: str = ""
    startup_timeout: int | None = None
    wait: bool = True
    metadata: dict[str, str] = field(default_factory=dict)


def parse_template_id(template_id: str) -> TemplateRef:
    text = (template_id or "").strip()
    base, sep, image = text.partition("//")
    cluster, csep, pool = base.rpartition("::") if "::" in base else ("", "", base)
    if csep and "::" in cluster:
        raise bad_request(f"templateID {template_id!r}: use [cluster::]pool[//image]")
    if not _POOL_RE.match(pool):
        raise bad_request(f"templateID {template_id!r}: pool name must be a DNS label (e.g. 'base')")
    if csep and not _CLUSTER_RE.match(cluster):
        raise bad_request(f"templateID {template_id!r}: cluster id must be a DNS label")
    if sep and not _IMAGE_RE.match(image):
        raise bad_request(f"templateID {template_id!r}: the image after '//' is not a valid image reference")
    return TemplateRef(pool=pool, cluster=cluster, image=image)


def _bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise bad_request(f"metadata {key!r} must be true or false")


def claim_options(metadata: dict[str, str] | None, template: TemplateRef) -> ClaimOptions:
    """Consume the reserved keys of ``metadata``; ``agentsandbox.io/image`` wins over ``//image``."""
    remaining: dict[str, str] = {}
    image = template.image
    startup: int | None = None
    wait = True
    for key, value in (metadata or {}).items():
        if key == META_IMAGE:
            if not _IMAGE_RE.match(value):
                raise bad_request(f"metadata {META_IMAGE!r} is not a valid image reference")
            image = value
        elif key == META_STARTUP_TIMEOUT:
            if not value.isdigit() or not 0 < int(value) <= MAX_STARTUP_TIMEOUT:
                raise bad_request(f"metadata {META_STARTUP_TIMEOUT!r} must be whole seconds, 1-{MAX_STARTUP_TIMEOUT}")
            startup = int(value)
        elif key == META_NO_WAIT:
            wait = not _bool(key, value)
        elif key == META_SCALING_GROUP:
            raise bad_request(f"metadata {META_SCALING_GROUP!r} needs SandboxEnvs, which this cluster does not serve")
        elif key.startswith(RESERVED_PREFIX):
            raise bad_request(f"metadata key {key!r} is reserved")
        else:
            remaining[key] = value
    return ClaimOptions(image=image, startup_timeout=startup, wait=wait, metadata=remaining)
