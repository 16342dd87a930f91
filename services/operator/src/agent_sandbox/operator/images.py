"""Docker image reference normalisation and digests.

Completion of an in-place update compares the image a container reports with
the image we asked for, and ``ubuntu:22.04`` must equal
``docker.io/library/ubuntu:22.04``; comparing raw strings is how peers
deadlocked (a target "never" matched).
"""

from __future__ import annotations

import functools

DEFAULT_REGISTRY = "docker.io"


@functools.lru_cache(maxsize=4096)  # a cluster uses few distinct references; each is compared many times
def normalize_image(ref: str) -> str:
    """Fully qualified ``registry/repo[:tag][@digest]`` with the implicit ``latest`` tag added."""
    ref = ref.strip()
    if not ref:
        return ref
    name, _, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        registry, path = DEFAULT_REGISTRY, name
    else:
        registry, path = first, rest
    if registry == DEFAULT_REGISTRY and "/" not in path.split(":", 1)[0]:
        path = f"library/{path}"
    last = path.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        path = f"{path}:latest"
    out = f"{registry}/{path}"
    return f"{out}@{digest}" if digest else out


def same_image(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return normalize_image(a) == normalize_image(b)
