"""Resolve the paths callers send against the acting user's home.

E2B semantics (e2b-contract §8): relative paths are relative to the user's home,
a leading ``~`` is the home, and the result is normalised. Pure functions.
"""

from __future__ import annotations

import posixpath


class PathError(ValueError):
    """The path cannot be used; the message is safe to show to the caller."""


def resolve_path(path: str, home: str) -> str:
    """Absolute, normalised form of ``path`` for a user whose home is ``home``."""
    if not path:
        raise PathError("path must not be empty")
    if "\x00" in path:
        raise PathError("path must not contain NUL bytes")
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    elif not path.startswith("/"):
        path = posixpath.join(home, path)
    normalised = posixpath.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it to be special); we never want that.
    if normalised.startswith("//"):
        normalised = "/" + normalised.lstrip("/")
    return normalised
