"""Drive the whole stack with the real E2B SDK; runs inside a per-version SDK venv, prints one JSON line.

Usage: ``python stack_sdk_driver.py SCENARIO[,SCENARIO...]`` with only ``E2B_API_URL``,
``E2B_SANDBOX_URL`` and ``E2B_API_KEY`` set (the exports of ``agent-sandbox up``). The envd-level
scenarios (commands, pty, files, errors, async) are the envd tests' own driver functions, imported
from ``tests/integration/envd/envd_sdk_driver.py``; this file adds what needs the control plane:
sandbox lifecycle (list, info, timeout, connect, kill) and a long streaming command.

Signed ``download_url``/``upload_url`` links are left out of ``files``: with ``E2B_SANDBOX_URL``
the SDK builds them on that one URL without the sandbox id, so no shared data plane can route them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envd"))

import itertools

import envd_sdk_driver as envd
from e2b import AsyncSandbox, Sandbox

STREAM_SECONDS = int(os.environ.get("STACK_STREAM_SECONDS", "120"))


class WithoutSignedUrls:
    """The sandbox as ``envd.files`` sees it, minus the signed-URL helpers (see module docstring)."""

    def __init__(self, sbx: Sandbox) -> None:
        self._sbx = sbx

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if name in ("download_url", "upload_url"):
            raise AttributeError(name)
        return getattr(self._sbx, name)


def error_name(fn, *args, **kwargs) -> str | None:  # type: ignore[no-untyped-def]
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        return type(exc).__name__
    return f"returned {result!r}"


def listed_ids() -> list[str]:
    return [s.sandbox_id for s in Sandbox.list().next_items()]


def first_command() -> dict:
    """Time to first command: create + ``commands.run("true")`` (the kill after it is not timed).

    ``TTFC_TEMPLATE`` (default the SDK's own default) and ``TTFC_COUNT`` (default 1) select what and
    how often; sequential, one sandbox at a time.
    """
    template = os.environ.get("TTFC_TEMPLATE")
    out: dict = {"exit_codes": [], "create_s": [], "ttfc_s": []}
    for _ in range(int(os.environ.get("TTFC_COUNT", "1"))):
        started = time.monotonic()
        sbx = Sandbox.create(template) if template else Sandbox.create()
        created = time.monotonic()
        try:
            out["exit_codes"].append(sbx.commands.run("true").exit_code)
            out["ttfc_s"].append(round(time.monotonic() - started, 4))
            out["create_s"].append(round(created - started, 4))
        finally:
            sbx.kill()
    return out


def lifecycle() -> dict:
    out: dict = {}
    sbx = Sandbox.create(metadata={"purpose": "stack-test"}, envs={"FROM_CREATE": "lc"})
    sid = sbx.sandbox_id
    out["id_has_cluster"] = sid.startswith("local-")
    out["first_command"] = sbx.commands.run("echo $FROM_CREATE").stdout.strip()
    out["listed"] = sid in listed_ids()
    info = sbx.get_info()
    out["info"] = {"id": info.sandbox_id == sid, "template": info.template_id,
                   "metadata": dict(info.metadata or {}).get("purpose")}
    sbx.set_timeout(600)
    later = sbx.get_info().end_at
    sbx.set_timeout(60)
    sooner = sbx.get_info().end_at
    out["timeout_moves_end"] = later > sooner
    other = Sandbox.connect(sid)
    try:
        out["connect"] = other.commands.run("echo connected").stdout.strip()
    except Exception as exc:  # SDK 2.20 drops the E2b-Sandbox-Id header on class-level connect
        out["connect"] = type(exc).__name__
    out["is_running"] = sbx.is_running()
    out["kill"] = sbx.kill()
    # No window: the data plane refuses a killed sandbox before the kill returns.
    out["is_running_after"] = sbx.is_running()
    out["kill_again"] = Sandbox.kill(sid)
    out["listed_after"] = sid in listed_ids()
    out["run_after_kill"] = error_name(sbx.commands.run, "true")
    out["connect_after_kill"] = error_name(Sandbox.connect, sid)
    return out


def stream() -> dict:
    """A command that prints a line a second for ``STREAM_SECONDS``: each line must arrive as printed."""
    sbx = Sandbox.create()
    try:
        arrivals: list[float] = []
        started = time.monotonic()
        result = sbx.commands.run(
            f"for i in $(seq 1 {STREAM_SECONDS}); do echo tick $i; sleep 1; done",
            on_stdout=lambda _line: arrivals.append(time.monotonic() - started), timeout=STREAM_SECONDS + 60)
        lines = result.stdout.splitlines()
        return {"exit_code": result.exit_code, "lines": len(lines), "last": lines[-1] if lines else None,
                "elapsed": round(time.monotonic() - started, 1),
                "first_arrival": round(arrivals[0], 2) if arrivals else None,
                "max_gap": round(max(b - a for a, b in itertools.pairwise(arrivals)), 2)
                if len(arrivals) > 1 else None}
    finally:
        sbx.kill()


async def async_lifecycle() -> dict:
    sbx = await AsyncSandbox.create()
    sid = sbx.sandbox_id
    out = {"run": (await sbx.commands.run("echo async-stack")).stdout.strip()}
    out["listed"] = sid in [s.sandbox_id for s in await AsyncSandbox.list().next_items()]
    out["kill"] = await sbx.kill()
    out["is_running_after"] = await sbx.is_running()
    return out


def keep() -> dict:
    """Create a sandbox and leave it running (restart tests): its id and a file written in it."""
    sbx = Sandbox.create(timeout=3600)
    sbx.files.write("/home/user/marker.txt", "before restart")
    return {"id": sbx.sandbox_id, "marker": sbx.files.read("/home/user/marker.txt")}


def reuse() -> dict:
    """What became of the sandbox ``KEEP_ID`` (restart tests), and whether new sandboxes work."""
    sid = os.environ["KEEP_ID"]
    out: dict = {"listed": sid in listed_ids(), "connect": error_name(Sandbox.connect, sid)}
    out["fresh"] = first_command()["exit_codes"]
    return out


def peek() -> dict:
    """What a sandbox sees of the stack's state dir ``STACK_STATE_DIR`` (credentials, kubeconfig)."""
    state = os.environ["STACK_STATE_DIR"]
    sbx = Sandbox.create()
    try:
        listing = sbx.commands.run(f"ls -A {state}", user="root").stdout.split()
        read = sbx.commands.run(f"cat {state}/credentials.json {state}/cluster/kubeconfig 2>&1; true", user="root")
        return {"listing": listing, "read": read.stdout}
    finally:
        sbx.kill()


def run_scenario(scenario: str) -> dict:
    if scenario == "peek":
        return peek()
    if scenario == "first_command":
        return first_command()
    if scenario == "lifecycle":
        return lifecycle()
    if scenario == "stream":
        return stream()
    if scenario == "keep":
        return keep()
    if scenario == "reuse":
        return reuse()
    if scenario == "async_lifecycle":
        return asyncio.run(async_lifecycle())
    if scenario == "files":
        sbx = Sandbox.create()
        try:
            return envd.files(WithoutSignedUrls(sbx))  # type: ignore[arg-type]
        finally:
            sbx.kill()
    return envd.run_scenario(scenario)


def main() -> None:
    print(json.dumps({scenario: run_scenario(scenario) for scenario in sys.argv[1].split(",")}), flush=True)
    os._exit(0)  # see envd_sdk_driver.main


if __name__ == "__main__":
    main()
