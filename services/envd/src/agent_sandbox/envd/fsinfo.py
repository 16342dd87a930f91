"""Describe filesystem entries the way upstream envd does (``EntryInfo``).

``mode`` carries Go ``os.FileMode`` bits (directory = 1<<31, symlink = 1<<27,
...) and ``permissions`` Go's ``FileMode.String()`` (``drwxr-xr-x``), because
that is what clients of E2B's envd have always received. A symlink is described
by its target's type, with ``is_symlink`` and ``symlink_target`` set.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass

# Go os.FileMode type bits.
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_NAMED_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHAR_DEVICE = 1 << 21
GO_STICKY = 1 << 20
GO_IRREGULAR = 1 << 19
_GO_LETTERS = "dalTLDpSugct?"

KIND_FILE = "file"
KIND_DIR = "dir"
KIND_SYMLINK = "symlink"
KIND_OTHER = "other"


def go_file_mode(st_mode: int) -> int:
    """Translate a POSIX ``st_mode`` into Go's ``os.FileMode`` bits."""
    mode = st_mode & 0o777
    fmt = stat.S_IFMT(st_mode)
    if fmt == stat.S_IFDIR:
        mode |= GO_DIR
    elif fmt == stat.S_IFLNK:
        mode |= GO_SYMLINK
    elif fmt == stat.S_IFBLK:
        mode |= GO_DEVICE
    elif fmt == stat.S_IFCHR:
        mode |= GO_DEVICE | GO_CHAR_DEVICE
    elif fmt == stat.S_IFIFO:
        mode |= GO_NAMED_PIPE
    elif fmt == stat.S_IFSOCK:
        mode |= GO_SOCKET
    elif fmt != stat.S_IFREG:
        mode |= GO_IRREGULAR
    if st_mode & stat.S_ISUID:
        mode |= GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_STICKY
    return mode


def go_mode_string(mode: int) -> str:
    """Go's ``FileMode.String()``: type letters (or ``-``) then ``rwxrwxrwx``."""
    letters = "".join(c for i, c in enumerate(_GO_LETTERS) if mode & (1 << (31 - i)))
    perms = "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return (letters or "-") + perms


def kind_of(st_mode: int) -> str:
    if stat.S_ISDIR(st_mode):
        return KIND_DIR
    if stat.S_ISREG(st_mode):
        return KIND_FILE
    if stat.S_ISLNK(st_mode):
        return KIND_SYMLINK
    return KIND_OTHER


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    path: str
    kind: str
    size: int
    mode: int
    permissions: str
    owner: str
    group: str
    mtime_ns: int
    symlink_target: str | None


def describe(path: str) -> Entry:
    """Describe ``path`` (not following a final symlink for identity); raises OSError."""
    lst = os.lstat(path)
    target: str | None = None
    st = lst
    if stat.S_ISLNK(lst.st_mode):
        link = os.readlink(path)
        target = os.path.normpath(os.path.join(os.path.dirname(path), link))
        try:
            st = os.stat(path)
        except OSError:
            st = lst  # dangling link: describe the link itself
    mode = go_file_mode(st.st_mode)
    return Entry(
        name=os.path.basename(path) or path,
        path=path,
        kind=kind_of(st.st_mode),
        size=st.st_size,
        mode=mode,
        permissions=go_mode_string(mode),
        owner=_owner(st.st_uid),
        group=_group(st.st_gid),
        mtime_ns=st.st_mtime_ns,
        symlink_target=target,
    )


def walk(root: str, depth: int) -> list[Entry]:
    """Entries below ``root`` down to ``depth`` levels (1 = direct children), sorted by path.

    Symlinked directories below the root are listed but not descended into.
    """
    entries: list[Entry] = []
    level = [root]
    for _ in range(max(depth, 1)):
        next_level: list[str] = []
        for directory in level:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                child = os.path.join(directory, name)
                try:
                    entry = describe(child)
                except OSError:
                    continue
                entries.append(entry)
                if entry.kind == KIND_DIR and entry.symlink_target is None:
                    next_level.append(child)
        level = next_level
        if not level:
            break
    return entries
