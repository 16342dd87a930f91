"""Bearer token and kubeconfig for the embedded API server.

The token is generated once and kept in the state directory (mode 0600) so a
restarted server accepts the clients configured before; the kubeconfig points
any Kubernetes client (kubectl, kubernetes_asyncio) at the server with it. It
names the HTTPS listener with the CA embedded, because client-go attaches
bearer tokens only to TLS connections.
"""

from __future__ import annotations

import base64
import os
import pathlib
import secrets

import yaml

TOKEN_FILE = "token"
KUBECONFIG_FILE = "kubeconfig"
CONTEXT = "localcluster"


def load_or_create_token(state_dir: pathlib.Path) -> str:
    path = state_dir / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def kubeconfig_document(server: str, token: str, ca_pem: bytes | None = None,
                        namespace: str = "default") -> dict[str, object]:
    cluster: dict[str, str] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(state_dir: pathlib.Path, server: str, token: str, ca_pem: bytes | None = None,
                     ) -> pathlib.Path:
    path = state_dir / KUBECONFIG_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(kubeconfig_document(server, token, ca_pem), fh, sort_keys=False)
    tmp.replace(path)
    return path
