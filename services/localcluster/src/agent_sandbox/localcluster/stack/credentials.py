"""The stack's credentials: generated on first start, kept in the state directory (mode 0600).

Three secrets, so the single-machine stack is secure by default (no dev mode anywhere):

* ``admin_key`` — the operator's and extproc's admin key (native admin API, control-plane gRPC, metrics);
* ``api_key`` — a tenant key ``asb_…`` for the user (the E2B SDK's ``E2B_API_KEY``); the operator
  only ever learns its SHA-256 hash (imported at start-up);
* ``envd_secret`` — the secret envd access tokens derive from (operator hands them out, extproc verifies).

Kept across restarts so the exports a user pasted into a shell keep working. Never logged: the
``export`` lines ``up`` prints for the user are the one place they appear.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from agent_sandbox.common.apikeys import InvalidApiKey, generate_api_key, key_secret

CREDENTIALS_FILE = "credentials.json"


class CredentialsError(RuntimeError):
    """The credentials file exists but cannot be used."""


@dataclass(frozen=True)
class Credentials:
    admin_key: str
    api_key: str
    envd_secret: str

    def __repr__(self) -> str:  # never print a secret by accident
        return "Credentials(***)"


def generate() -> Credentials:
    return Credentials(admin_key=generate_api_key(), api_key=generate_api_key(), envd_secret=secrets.token_hex(32))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_or_create(state_dir: Path) -> tuple[Credentials, bool]:
    """The credentials of ``state_dir`` and whether they were created just now."""
    path = state_dir / CREDENTIALS_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text())
            creds = Credentials(admin_key=data["admin_key"], api_key=data["api_key"], envd_secret=data["envd_secret"])
            key_secret(creds.api_key)
        except (ValueError, KeyError, TypeError, InvalidApiKey) as exc:
            raise CredentialsError(f"{path} is damaged ({type(exc).__name__}); remove it to generate new "
                                   "credentials") from None
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return creds, False
    state_dir.mkdir(parents=True, exist_ok=True)
    creds = generate()
    write_private(path, json.dumps(asdict(creds), indent=2) + "\n")
    return creds, True
