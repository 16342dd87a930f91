"""The unmodified E2B SDK (three pinned versions) against our E2B port, with real sandboxes.

Real parts end to end: the embedded control plane with a ``local`` node (bubblewrap sandboxes with
envd inside), the operator, real extproc + Envoy as the data plane (``E2B_SANDBOX_URL``; envd access
tokens checked at the edge), and our API servers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from native_stack import NativeStack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envd"))

from envd_harness import SDK_VERSIONS, sdk_python

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"), reason="needs root and bubblewrap"),
]
GATEWAY_TEMPLATE = "{gateway}"
DRIVER = Path(__file__).resolve().parent / "e2b_sdk_driver.py"


@pytest.fixture(scope="module")
def local_stack() -> Iterator[NativeStack]:
    # envd is reached the way the SDK reaches it (through Envoy + extproc), so create's 201 proves routability.
    s = NativeStack(node="local", data_plane=True, envd_secret="envd-secret-" + "ab" * 16,
                    envd_url_template=GATEWAY_TEMPLATE).start()
    try:
        s.create_pool("sdk", 6)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module", params=SDK_VERSIONS)
def observed(request: pytest.FixtureRequest, local_stack: NativeStack) -> dict:
    key = local_stack.tenant_key(f"sdk-{request.param}", "red")
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env.update(E2B_API_KEY="e2b_" + key[4:], E2B_API_URL=local_stack.e2b_url, E2B_SANDBOX_URL=local_stack.gateway_url)
    result = subprocess.run([str(sdk_python(request.param)), str(DRIVER), "sdk"], env=env, capture_output=True,
                            text=True, timeout=240, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and lines, f"driver failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(lines[-1])


def test_sandbox_flow(observed: dict) -> None:
    assert observed["run"] == "yes\nuser\n", "create envVars reach commands; commands run as user"
    assert observed["read"] == "from the sdk" and observed["listed_files"]
    info = observed["info"]
    assert info["same_id"] and info["template"] == "sdk" and info["suite"].startswith("sdk-")
    assert 590 <= info["ttl"] <= 600, "set_timeout(600) moved the deadline"
    if "metrics" in observed:
        assert observed["metrics"] is True


def test_list_filters_and_pages(observed: dict) -> None:
    assert observed["list"]["ids"] == observed["expected_ids"]
    if observed["list"]["paginated"]:
        assert observed["list"]["pages"] == 2, "limit=1 pages through x-next-token, one sandbox per page"
    assert observed["list_after_kill"] == []
    if "filtered" in observed:  # SDKs with SandboxQuery(template=, started_after=)
        filtered = observed["filtered"]
        assert filtered["template"] == observed["expected_ids"] and filtered["other_template"] == []
        assert filtered["started_after"] == [filtered["other_id"]], "only the sandbox started after the cut"


def test_kill_semantics(observed: dict) -> None:
    assert observed["kill"] is True and observed["kill_again"] is False
    assert observed["is_running"] is False
    assert observed["get_info_after_kill"] in ("SandboxNotFoundException", "NotFoundException")
    assert observed["connect_after_kill"] in ("SandboxNotFoundException", "NotFoundException")


def test_idempotent_create_and_errors(observed: dict) -> None:
    if "idempotent" in observed:
        assert observed["idempotent"] is True
    assert observed["bad_template"] in ("SandboxException", "InvalidArgumentException")


def test_env_vars_never_land_in_pod_annotations(local_stack: NativeStack) -> None:
    headers = {"X-API-KEY": "e2b_" + local_stack.tenant_key("env-check", "red")[4:]}
    r = requests.post(f"{local_stack.e2b_url}/v2/sandboxes", headers=headers, timeout=60,
                      json={"templateID": "sdk", "envVars": {"API_TOKEN": "s3cr3t-value-42"}})
    assert r.status_code == 201, r.text
    sid = r.json()["sandboxID"]
    try:
        assert local_stack.operator is not None
        [pod] = local_stack.operator.pods.by_index("sandbox-id", sid)
        assert "s3cr3t-value-42" not in json.dumps(pod)
    finally:
        requests.delete(f"{local_stack.e2b_url}/sandboxes/{sid}", headers=headers, timeout=30)
