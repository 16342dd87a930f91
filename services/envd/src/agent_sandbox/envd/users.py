"""Resolve the account a request acts as, and create the default account when missing.

Commands and file operations run as a named user (default ``user``, home
``/home/user``, E2B semantics). When envd runs as root in an image without that
account it creates it, trying ``useradd`` (Debian/RHEL), ``adduser`` (busybox,
Alpine) and finally appending to ``/etc/passwd`` itself, so any image works.
When envd runs unprivileged (development) it can only act as itself: a missing
default user falls back to the current one, any other user is refused.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass

from agent_sandbox.common.logging import get_logger

log = get_logger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class UserError(Exception):
    """The requested user cannot be used; the message is safe to show to the caller."""


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...]

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()


def _account(pw: pwd.struct_passwd) -> Account:
    try:
        groups = tuple(os.getgrouplist(pw.pw_name, pw.pw_gid))
    except OSError:
        groups = (pw.pw_gid,)
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir or "/", groups)


def lookup(name: str, *, default_name: str) -> Account:
    """The account for ``name``; unprivileged envd maps a missing default user to itself."""
    try:
        account = _account(pwd.getpwnam(name))
    except KeyError:
        if name == default_name and os.geteuid() != 0:
            return _account(pwd.getpwuid(os.geteuid()))
        raise UserError(f"user '{name}' does not exist") from None
    if os.geteuid() != 0 and not account.is_self:
        raise UserError(f"envd runs unprivileged and cannot act as user '{name}'")
    return account


def ensure_user(name: str) -> None:
    """Create ``name`` with a home directory when envd is root and the account is missing."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    home = f"/home/{name}"
    shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    attempts: list[list[str]] = []
    if shutil.which("useradd"):
        attempts.append(["useradd", "--create-home", "--home-dir", home, "--shell", shell, name])
    if shutil.which("adduser"):
        attempts.append(["adduser", "-D", "-h", home, "-s", shell, name])
    for argv in attempts:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            break
        log.warning("user_create_failed", tool=argv[0], user=name, stderr=result.stderr.strip()[:200])
    else:
        _append_passwd(name, home, shell)
    account = pwd.getpwnam(name)
    os.makedirs(account.pw_dir, mode=0o755, exist_ok=True)
    os.chown(account.pw_dir, account.pw_uid, account.pw_gid)
    log.info("user_created", user=name, home=account.pw_dir)


def _append_passwd(name: str, home: str, shell: str) -> None:
    """Last resort for images without user tools: add passwd/group lines directly."""
    used = {entry.pw_uid for entry in pwd.getpwall()}
    uid = next(candidate for candidate in range(1000, 60000) if candidate not in used)
    with open("/etc/group", "a", encoding="utf-8") as groups:
        groups.write(f"{name}:x:{uid}:\n")
    with open("/etc/passwd", "a", encoding="utf-8") as passwd:
        passwd.write(f"{name}:x:{uid}:{uid}::{home}:{shell}\n")


def user_environment(account: Account, base_path: str | None) -> dict[str, str]:
    """The login variables every process of ``account`` gets."""
    return {
        "HOME": account.home,
        "USER": account.name,
        "LOGNAME": account.name,
        "PATH": base_path or DEFAULT_PATH,
    }
