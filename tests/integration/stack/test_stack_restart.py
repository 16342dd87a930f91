"""State survives ``up`` being stopped (Ctrl-C) and started again on the same state directory.

Kept: credentials (so the exports a user pasted stay valid), the pool and template (same object)
and the API key. Sandboxes that were running are cleanly recycled: their processes ended with the
node, so on restart the operator sees their containers restarted and returns the pods to the pool
(idle again, no leaked pod); the E2B SDK reports the old id as not found, and the native API still reads it,
as Failed, from the stored history.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from stack_harness import EPHEMERAL_PORTS, NEEDS_LOCAL_NODE, UpProcess, bound, descendants, run_sdk_driver, still_alive

from agent_sandbox.operator.lifecycle.records import FINISHED_STATUSES

pytestmark = [NEEDS_LOCAL_NODE, pytest.mark.timeout(600)]


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def pool_uid(up: UpProcess) -> str:
    env = {**os.environ, "KUBECONFIG": up.exports["KUBECONFIG"]}
    result = subprocess.run(["kubectl", "get", "sbp", "base", "-o", "json"], env=env, capture_output=True,
                            text=True, timeout=30, check=True)
    return str(json.loads(result.stdout)["metadata"]["uid"])


def finished_record(up: UpProcess, sandbox_id: str, within_s: float = 60.0) -> dict[str, Any]:
    """``GET /v1/sandboxes/{id}`` on the native API once it reads as finished (its pod is recycled after the
    restart, then its record comes from the stored history)."""
    url = f"{up.exports['AGENT_SANDBOX_URL']}/v1/sandboxes/{sandbox_id}"
    headers = {"X-API-Key": up.exports["AGENT_SANDBOX_API_KEY"]}
    deadline = time.monotonic() + within_s
    while True:
        answer = requests.get(url, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        record: dict[str, Any] = answer.json()["sandbox"]
        if record["status"] in FINISHED_STATUSES or time.monotonic() > deadline:
            return record
        time.sleep(0.5)


def stop_and_check_clean(up: UpProcess) -> None:
    assert up.proc is not None
    tree = descendants(up.proc.pid)
    ports = [p for svc in up.status()["services"].values() for p in svc["ports"].values()]
    assert up.stop() == 0, up.stderr_tail()
    assert still_alive(tree) == []
    assert [p for p in ports if bound("127.0.0.1", p)] == []


def test_restart_keeps_pools_keys_and_sandboxes(tmp_path: Path, sdk_pythons: dict[str, Path]) -> None:
    config = tmp_path / "stack.json"
    config.write_text(json.dumps({"ports": dict(zip(EPHEMERAL_PORTS, free_ports(len(EPHEMERAL_PORTS)), strict=True)),
                                  "pool": {"replicas": 1}}))
    python = sdk_pythons["2.63.0"]
    first = UpProcess(tmp_path / "state", config).start()
    try:
        uid = pool_uid(first)
        kept = run_sdk_driver(python, "keep", first.sdk_env())["keep"]
        assert kept["marker"] == "before restart"
    finally:
        stop_and_check_clean(first)

    second = UpProcess(tmp_path / "state", config).start()
    try:
        assert second.exports == first.exports, "same credentials, same URLs: the user's exports stay valid"
        assert pool_uid(second) == uid, "the pool is the same object, not recreated"
        assert "credentials loaded" in second.stderr_tail()
        reused = run_sdk_driver(python, "reuse", {**second.sdk_env(), "KEEP_ID": kept["id"]})["reuse"]
        assert reused == {"listed": False, "connect": "SandboxNotFoundException", "fresh": [0]}, reused
        ended = finished_record(second, kept["id"])
        assert ended["status"] == "Failed" and ended["terminatedAt"], \
            f"the sandbox the stop ended still reads, as ended, through the native API: {ended}"
        env = {**os.environ, "KUBECONFIG": second.exports["KUBECONFIG"]}
        subprocess.run(["kubectl", "wait", "sbp/base", "--for=jsonpath={.status.idleReplicas}=1", "--timeout=60s"],
                       env=env, check=True, capture_output=True, timeout=90)
        pods = subprocess.run(["kubectl", "get", "pods", "-l", "agentsandbox.io/sandbox-pool=base", "-o", "name"],
                              env=env, check=True, capture_output=True, text=True, timeout=30).stdout.split()
        assert len(pods) == 1, f"the recycled pod went back to the pool, none leaked: {pods}"
    finally:
        stop_and_check_clean(second)
