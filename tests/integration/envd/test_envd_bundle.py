"""The relocatable envd bundle: built incrementally, runs in an image without Python, serves the SDK."""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from envd_harness import (
    Envd,
    busybox_rootfs,
    connect_call,
    free_port,
    run_driver,
    run_in_image,
    sdk_env,
    start_control_plane,
    start_envd,
    stop,
    wait_http,
)

from agent_sandbox.envd.bundle import FINGERPRINT_FILE, build_bundle

pytestmark = pytest.mark.timeout(240)

needs_root_tools = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("bwrap") or not shutil.which("busybox"),
    reason="needs root, bubblewrap and busybox-static",
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("bundle") / "agentsandbox"
    build_bundle(dest)
    return dest


def test_bundle_layout_and_incremental_rebuild(bundle: Path) -> None:
    for name in ("envd", "agent-sandbox-entrypoint.sh", "lib", "python", FINGERPRINT_FILE):
        assert (bundle / name).exists(), name
    assert any(p.name.startswith("ld-linux") for p in (bundle / "lib").iterdir()), "the loader travels along"
    stamp = (bundle / FINGERPRINT_FILE).stat().st_mtime_ns
    started = time.monotonic()
    build_bundle(bundle)
    assert time.monotonic() - started < 5, "an unchanged bundle is not rebuilt"
    assert (bundle / FINGERPRINT_FILE).stat().st_mtime_ns == stamp


@needs_root_tools
def test_envd_runs_in_an_image_without_python(bundle: Path, tmp_path: Path) -> None:
    if not (bundle / "tini").exists():
        pytest.skip("Debian package tini (tini-static) is not installed")
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    assert not list((rootfs / "bin").glob("python*"))
    port = free_port()
    proc = run_in_image(rootfs, bundle, {"AGENT_SANDBOX_ENVD_LISTEN": f"127.0.0.1:{port}", "IMAGE_VAR": "from-image"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc=proc)
        status, events = connect_call(
            url, "process.Process/Start",
            {"process": {"cmd": "/bin/sh", "args": ["-c", "id -un; pwd; . /etc/profile.d/*.sh; echo $IMAGE_VAR"]},
             "stdin": False},
            stream=True,
        )
        assert status == 200
        assert "start" in events[0][1]["event"]
        stdout = b"".join(
            base64.b64decode(m["event"]["data"]["stdout"]) for _, m in events if "data" in m.get("event", {})
        )
        assert stdout.decode().split() == ["user", "/home/user", "from-image"]
        assert events[-2][1]["event"]["end"]["status"] == "exit status 0"
        assert events[-1][0] == 2, "stream ends with an end-of-stream envelope"
        assert "user:x:" in (rootfs / "etc" / "passwd").read_text(), "the entrypoint created the user"
    finally:
        stop(proc)


@needs_root_tools
def test_idle_image_only_sleeps(bundle: Path, tmp_path: Path) -> None:
    if not (bundle / "tini").exists():
        pytest.skip("Debian package tini (tini-static) is not installed")
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    (rootfs / "etc" / "agent_sandbox_is_idle_image").touch()
    port = free_port()
    proc = run_in_image(rootfs, bundle, {"AGENT_SANDBOX_ENVD_LISTEN": f"127.0.0.1:{port}"})
    try:
        with pytest.raises(TimeoutError):
            wait_http(f"http://127.0.0.1:{port}/health", deadline_s=1.5, proc=proc)
        assert proc.poll() is None, "the idle image keeps running (sleep infinity)"
        assert "user:" not in (rootfs / "etc" / "passwd").read_text()
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def bundled_envd(bundle: Path) -> Iterator[Envd]:
    server = start_envd(command=[str(bundle / "envd")])
    yield server
    server.close()


def test_sdk_against_bundled_envd(bundled_envd: Envd, sdk_pythons: dict[str, Path]) -> None:
    cp = start_control_plane(bundled_envd.url)
    try:
        r = run_driver(sdk_pythons["2.63.0"], "commands,files", sdk_env(cp, bundled_envd.url))
    finally:
        cp.close()
    assert r["commands"]["echo"]["stdout"] == "hello\n"
    assert r["commands"]["whoami"] == "user"
    assert r["commands"]["timeout_killed"]
    assert r["files"]["read_text"] == "hello file"
    assert ["w.txt", "create"] in r["files"]["watch"]
