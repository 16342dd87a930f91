"""What the stack runs: one :class:`ServiceSpec` per process, built from settings alone (no I/O).

Each service is its own ``agent-sandbox <service>`` subprocess (Envoy is its own binary), so
the stack couples to the services only through their stable command lines. Secrets travel in
the environment (``AGENT_SANDBOX_ADMIN_KEY``, ``AGENT_SANDBOX_SECRET``), never on a command line
where ``ps`` would show them. Start order is list order; stop order is the reverse.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from agent_sandbox.common.apikeys import as_e2b_key
from agent_sandbox.localcluster.stack.credentials import Credentials
from agent_sandbox.localcluster.stack.settings import StackSettings

#: The ``--state-dir`` of the embedded control plane, below the stack's state dir.
CLUSTER_DIR = "cluster"
RUN_DIR = "run"
LOG_DIR = "logs"
ENVOY_ADMIN_SOCKET = "envoy-admin.sock"
ENVOY_CONFIG = "envoy.yaml"


@dataclass(frozen=True)
class Layout:
    """Where things live below the state directory."""

    root: Path

    @property
    def cluster(self) -> Path:
        return self.root / CLUSTER_DIR

    @property
    def kubeconfig(self) -> Path:
        return self.cluster / "kubeconfig"

    @property
    def run(self) -> Path:
        return self.root / RUN_DIR

    @property
    def logs(self) -> Path:
        return self.root / LOG_DIR

    @property
    def envoy_config(self) -> Path:
        return self.run / ENVOY_CONFIG

    @property
    def envoy_admin_socket(self) -> Path:
        return self.run / ENVOY_ADMIN_SOCKET


@dataclass(frozen=True)
class Health:
    """An HTTP GET that answers 200 once the service is ready (over a Unix socket when ``unix_socket``)."""

    url: str
    unix_socket: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: tuple[str, ...]
    health: Health
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoints:
    """The URLs a user (and the stack itself) talks to."""

    cluster: str
    api: str
    e2b: str
    envoy: str


def endpoints(s: StackSettings) -> Endpoints:
    p, h = s.ports, s.host
    return Endpoints(cluster=f"http://{h}:{p.cluster}", api=f"http://{h}:{p.api}", e2b=f"http://{h}:{p.e2b}",
                     envoy=f"http://{h}:{p.envoy}")


def export_lines(ends: Endpoints, creds: Credentials, kubeconfig: Path) -> list[str]:
    """The shell exports printed after ``READY`` (E2B SDK, native API, kubectl)."""
    values = {
        "E2B_API_URL": ends.e2b,
        "E2B_SANDBOX_URL": ends.envoy,
        # The e2b_ spelling of the same key: some SDK versions check the prefix client-side.
        "E2B_API_KEY": as_e2b_key(creds.api_key),
        "AGENT_SANDBOX_URL": ends.api,
        "AGENT_SANDBOX_API_KEY": creds.api_key,
        "KUBECONFIG": str(kubeconfig),
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


def plan(s: StackSettings, creds: Credentials, layout: Layout, agent_sandbox: str, envoy: str) -> list[ServiceSpec]:
    """The stack's services in start order. ``agent_sandbox`` and ``envoy`` are the two executables."""
    p, h = s.ports, s.host
    ends = endpoints(s)
    kube = str(layout.kubeconfig)
    secrets = {"AGENT_SANDBOX_ADMIN_KEY": creds.admin_key, "AGENT_SANDBOX_SECRET": creds.envd_secret}
    return [
        ServiceSpec(
            name="localcluster",
            argv=(agent_sandbox, "localcluster", "--listen", f"{h}:{p.cluster}", "--node", "local",
                  "--state-dir", str(layout.cluster)),
            health=Health(f"{ends.cluster}/readyz"), ports={"api": p.cluster},
            # Sandboxes on the host root must not read the stack's credentials, kubeconfig or token.
            env={"AGENT_SANDBOX_LOCAL_MASKED_PATHS": json.dumps([str(layout.root)])}),
        ServiceSpec(
            name="extproc",
            argv=(agent_sandbox, "extproc", "--kubeconfig", kube, "--listen", f"{h}:{p.extproc}",
                  "--control-listen", f"{h}:{p.control}", "--health-listen", f"{h}:{p.extproc_health}",
                  "--cluster-id", s.cluster_id, "--check-envd-token"),
            health=Health(f"http://{h}:{p.extproc_health}/readyz"),
            ports={"extproc": p.extproc, "control": p.control, "health": p.extproc_health}, env=secrets),
        ServiceSpec(
            name="operator",
            argv=(agent_sandbox, "operator", "--kubeconfig", kube, "--cluster-id", s.cluster_id,
                  "--api-listen", f"{h}:{p.api}", "--e2b-listen", f"{h}:{p.e2b}",
                  "--metrics-listen", f"{h}:{p.operator_metrics}", "--extproc-url", f"{h}:{p.control}",
                  "--gateway-base-url", ends.envoy, "--no-leader-elect"),
            health=Health(f"http://{h}:{p.operator_metrics}/readyz"),
            ports={"api": p.api, "e2b": p.e2b, "metrics": p.operator_metrics}, env=secrets),
        ServiceSpec(
            name="envoy",
            argv=(envoy, "-c", str(layout.envoy_config), "--concurrency", str(s.envoy_concurrency),
                  "--disable-hot-restart", "--log-level", "warning"),
            health=Health("http://envoy-admin/ready", unix_socket=str(layout.envoy_admin_socket)),
            ports={"listen": p.envoy}),
    ]
