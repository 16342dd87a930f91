"""Create directories that belong to the acting user, not to root-running envd."""

from __future__ import annotations

import os

from .users import Account


def make_dirs_owned(path: str, account: Account) -> bool:
    """``mkdir -p`` whose newly created directories belong to ``account``; False if it existed."""
    missing: list[str] = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if not missing:
        return False
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            continue
        if os.geteuid() == 0:
            os.chown(directory, account.uid, account.gid)
    return True
