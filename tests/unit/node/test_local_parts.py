"""Pure parts of the local node: image → rootfs, sandbox command line, env, resource limits."""

from __future__ import annotations

import pathlib

import pytest

from agent_sandbox.localcluster.node.local.cgroups import Limits, parse_cpu, parse_memory
from agent_sandbox.localcluster.node.local.rootfs import HOST_ROOT, ImageEntry, ImageNotFound, resolve
from agent_sandbox.localcluster.node.local.sandbox import SandboxSpec, build_argv, container_env


def test_resolve_images(tmp_path: pathlib.Path) -> None:
    assert resolve("host", {}).path == HOST_ROOT
    idle = resolve("agent-sandbox/idle:v2", {})
    assert idle.is_host and idle.env == {"AGENT_SANDBOX_IS_IDLE_IMAGE": "true"}
    assert resolve(str(tmp_path), {}).path == tmp_path
    mapped = {"python:3.12": ImageEntry(rootfs=str(tmp_path), env={"A": "1"})}
    rootfs = resolve("docker.io/library/python:3.12", mapped)  # normalised lookup
    assert rootfs.path == tmp_path and rootfs.env == {"A": "1"}
    assert resolve("python:3.12", mapped).digest == resolve("docker.io/library/python:3.12", mapped).digest
    with pytest.raises(ImageNotFound):
        resolve("nginx:1", mapped)
    with pytest.raises(ImageNotFound):
        resolve(str(tmp_path / "missing"), {})


def test_argv_isolates_and_masks() -> None:
    spec = SandboxSpec(
        lower=pathlib.Path("/"), upper=pathlib.Path("/s/u"), work=pathlib.Path("/s/w"), merged=pathlib.Path("/s/m"),
        bundle=pathlib.Path("/s/bundle"), mount_path="/mnt/agentsandbox", hostname="p" * 80,
        command=["/bin/sh", "-c", "echo hi"], env={"A": "1"}, host_root=True, masked=(pathlib.Path("/s"),),
        cgroup_procs=(pathlib.Path("/cg/a/cgroup.procs"), pathlib.Path("/cg/b/cgroup.procs")),
    )
    argv = build_argv(spec, info_fd=7)
    assert argv[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    assert "/cg/a/cgroup.procs:/cg/b/cgroup.procs" in argv
    joined = " ".join(argv)
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--cap-drop ALL",
                 "--ro-bind /s/bundle /mnt/agentsandbox", "--tmpfs /tmp", "--tmpfs /s", "--info-fd 7",
                 "--bind /s/m /", "--clearenv", "--setenv A 1"):
        assert flag in joined
    assert "CAP_SYS_ADMIN" not in joined and "CAP_NET_RAW" not in joined
    assert argv[argv.index("--hostname") + 1] == "p" * 63
    assert argv[-4:] == ["--", "/bin/sh", "-c", "echo hi"]


def test_container_env_precedence() -> None:
    env = container_env(
        {"PATH": "/image/bin", "X": "image"},
        {"env": [{"name": "X", "value": "spec"},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]},
        {"AGENT_SANDBOX_POD_IP": "127.77.0.2"},
        {"status.podIP": "127.77.0.2"},
    )
    assert env["PATH"] == "/image/bin" and env["X"] == "spec" and env["IP"] == "127.77.0.2"
    assert env["AGENT_SANDBOX_POD_IP"] == "127.77.0.2"


def test_limits_from_resources() -> None:
    assert parse_memory("64Mi") == 64 * 2**20 and parse_memory("1G") == 10**9 and parse_memory("x") is None
    assert parse_cpu("250m") == 0.25 and parse_cpu("2") == 2.0
    limits = Limits.from_container({"resources": {"limits": {"memory": "32Mi", "cpu": "500m"},
                                                  "requests": {"cpu": "100m"}}}, pids=64)
    files = limits.files()
    assert ("memory.limit_in_bytes", str(32 * 2**20)) in files["memory"]
    assert ("cpu.cfs_quota_us", "50000") in files["cpu"] and ("cpu.shares", "102") in files["cpu"]
    assert files["pids"] == [("pids.max", "64")]
    assert Limits.from_container({}, pids=None).files() == {}
