"""Image references as a kubelet reports them.

The operator decides that an in-place image swap is complete by comparing the
digest in a container's ``status.imageID`` with the digest of the spec image
(behaviour.md §7.2), and it treats ``ubuntu:22.04`` and
``docker.io/library/ubuntu:22.04`` as the same image. So every node agent must
normalise references the way Docker does and derive one stable digest per
normalised reference (or take a configured one, so two references can share a
digest like a re-tagged image).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
#: The `local` node's built-in references that are not Docker Hub names.
LOCAL_WORDS = frozenset({"host"})
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed image reference: ``repository`` always carries the registry."""

    repository: str
    tag: str | None
    digest: str | None  # "sha256:<hex>" when the reference pins one

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_image(ref: str) -> ImageRef:
    """Parse and normalise ``ref`` (``ubuntu`` → ``docker.io/library/ubuntu:latest``).

    Local references that are not registry names (``host``, ``/srv/rootfs``)
    keep their spelling as the repository, so they still get a stable digest.
    """
    name, digest = ref, None
    if "@" in ref:
        name, digest = ref.split("@", 1)
        if not _DIGEST_RE.match(digest):
            digest = None
    if name.startswith("/"):
        return ImageRef(name, None, digest)
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) == 1:
        repository = name if name in LOCAL_WORDS else f"{DEFAULT_REGISTRY}/library/{name}"
    elif "." in parts[0] or ":" in parts[0] or parts[0] == "localhost":
        repository = name
    else:
        repository = f"{DEFAULT_REGISTRY}/{name}"
    if tag is None and digest is None and repository.startswith(DEFAULT_REGISTRY + "/"):
        tag = "latest"
    return ImageRef(repository, tag, digest)


def normalize_image(ref: str) -> str:
    return str(parse_image(ref))


def default_digest(ref: str) -> str:
    """A stable ``sha256:<hex>`` per normalised reference (pinned digests are kept)."""
    parsed = parse_image(ref)
    if parsed.digest:
        return parsed.digest
    return "sha256:" + hashlib.sha256(str(parsed).encode()).hexdigest()


def image_id(ref: str, digest: str) -> str:
    """``status.containerStatuses[].imageID`` in the dockershim form the operator parses."""
    return f"docker-pullable://{parse_image(ref).repository}@{digest}"


def digest_of_image_id(value: str) -> str | None:
    """The ``sha256:<hex>`` part of an imageID, or None."""
    _, sep, digest = value.rpartition("@")
    return digest if sep and _DIGEST_RE.match(digest) else None
