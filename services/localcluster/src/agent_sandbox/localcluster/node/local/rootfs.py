"""Image reference → root filesystem for the ``local`` node.

There is no registry on a single machine, so an image reference names a
directory tree that becomes the read-only lower layer of the sandbox's
overlay:

* ``host`` — the host root (read-only; the sandbox writes to its own overlay);
* ``agent-sandbox/idle`` (any tag) — the host root plus
  ``AGENT_SANDBOX_IS_IDLE_IMAGE=true``, so the shared entrypoint just sleeps;
* an absolute path — that directory;
* a name from the image map (``<state_dir>/images.yaml`` or the ``image_map``
  setting), looked up as written and normalised::

      python:3.12:
        rootfs: /srv/rootfs/python   # or "host"
        env: {PYTHONUNBUFFERED: "1"}  # optional image ENV
        digest: sha256:<64 hex>       # optional; default: sha256 of the normalised reference

Anything else fails like a registry miss (ErrImagePull).
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import yaml
from pydantic import BaseModel, Field, ValidationError

from agent_sandbox.common.vocabulary import IDLE_IMAGE_ENV
from agent_sandbox.localcluster.node.images import default_digest, normalize_image, parse_image

HOST = "host"
IDLE_REPOSITORY = "docker.io/agent-sandbox/idle"
HOST_ROOT = pathlib.Path("/")


class ImageNotFound(LookupError):
    pass


class ImageEntry(BaseModel):
    model_config = {"extra": "forbid"}

    rootfs: str
    env: dict[str, str] = Field(default_factory=dict)
    digest: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Rootfs:
    path: pathlib.Path
    digest: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_host(self) -> bool:
        return self.path == HOST_ROOT


def load_image_map(path: pathlib.Path | None) -> dict[str, ImageEntry]:
    if path is None or not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"image map {path} must be a mapping of image name to entry")
    try:
        return {str(name): ImageEntry.model_validate(entry) for name, entry in data.items()}
    except ValidationError as exc:
        raise ValueError(f"image map {path} is invalid: {exc}") from exc


def resolve(ref: str, image_map: dict[str, ImageEntry]) -> Rootfs:
    """The root filesystem ``ref`` names; raises :class:`ImageNotFound` with a registry-like message."""
    wanted = normalize_image(ref)
    entry = image_map.get(ref) or next((e for name, e in image_map.items() if normalize_image(name) == wanted), None)
    if entry is not None:
        path = HOST_ROOT if entry.rootfs == HOST else pathlib.Path(entry.rootfs)
        return _checked(ref, path, entry.digest or default_digest(ref), dict(entry.env))
    if ref == HOST:
        return Rootfs(HOST_ROOT, default_digest(ref))
    if parse_image(ref).repository == IDLE_REPOSITORY:
        return Rootfs(HOST_ROOT, default_digest(ref), {IDLE_IMAGE_ENV: "true"})
    if ref.startswith("/"):
        return _checked(ref, pathlib.Path(ref), default_digest(ref), {})
    raise ImageNotFound(f"image {ref!r} is not {HOST!r}, the idle image, a directory or in the image map")


def _checked(ref: str, path: pathlib.Path, digest: str, env: dict[str, str]) -> Rootfs:
    if not path.is_absolute() or not path.is_dir():
        raise ImageNotFound(f"root filesystem {str(path)!r} of image {ref!r} is not a directory")
    if any(c in str(path) for c in ",:"):
        raise ImageNotFound(f"root filesystem path {str(path)!r} contains ',' or ':' (unusable as overlay layer)")
    return Rootfs(path, digest, env)
