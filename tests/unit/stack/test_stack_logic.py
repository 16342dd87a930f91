"""Pure parts of ``agent-sandbox up``: settings, service plan, exports, backoff, bootstrap bodies, credentials."""

from __future__ import annotations

import itertools
import shlex
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from agent_sandbox.common.apikeys import hash_api_key
from agent_sandbox.common.settings import SettingsError, load_settings
from agent_sandbox.localcluster.stack import bootstrap, envoyconf
from agent_sandbox.localcluster.stack.credentials import CredentialsError, generate, load_or_create
from agent_sandbox.localcluster.stack.plan import Layout, endpoints, export_lines, plan
from agent_sandbox.localcluster.stack.runfile import (
    AlreadyRunning,
    RunRecord,
    ServiceRecord,
    hold_lock,
    is_locked,
    process_matches,
    read_record,
    write_record,
)
from agent_sandbox.localcluster.stack.settings import PoolSettings, Ports, StackSettings, default_state_dir
from agent_sandbox.localcluster.stack.supervisor import Backoff
from agent_sandbox.localcluster.stack.up import resolve_ports


def settings(tmp_path: Path, **kw: object) -> StackSettings:
    return StackSettings(state_dir=tmp_path, **kw)


def test_defaults_are_the_cluster_ports_on_loopback(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert (s.host, s.ports.api, s.ports.e2b, s.ports.envoy, s.ports.control) == ("127.0.0.1", 8080, 8090, 8092, 9003)
    assert (s.pool.name, s.pool.image, s.pool.replicas) == ("base", "host", 2)


def test_non_loopback_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        settings(tmp_path, host="0.0.0.0")


def test_config_file_sets_nested_values(tmp_path: Path) -> None:
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(yaml.safe_dump({"ports": {"api": 0, "envoy": 18092}, "pool": {"replicas": 5}}))
    s = load_settings(StackSettings, {"state_dir": tmp_path}, cfg)
    assert (s.ports.api, s.ports.envoy, s.ports.e2b, s.pool.replicas) == (0, 18092, 8090, 5)


def test_config_file_typo_is_a_readable_error(tmp_path: Path) -> None:
    cfg = tmp_path / "stack.yaml"
    cfg.write_text("pool: {replica: 3}\n")
    with pytest.raises(SettingsError, match="replica"):
        load_settings(StackSettings, {"state_dir": tmp_path}, cfg)


def test_default_state_dir(tmp_path: Path) -> None:
    home = tmp_path / "home-state"
    assert default_state_dir(tmp_path, home) == home
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "up").write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    assert default_state_dir(tmp_path, home) == tmp_path / ".state"


def test_zero_ports_are_resolved_and_others_kept() -> None:
    picked = itertools.count(40000)
    ports = resolve_ports(Ports(api=0, e2b=0, envoy=18092), lambda: next(picked))
    assert (ports.api, ports.e2b, ports.envoy, ports.cluster) == (40000, 40001, 18092, 6443)


def test_plan_order_and_secrets_stay_out_of_argv(tmp_path: Path) -> None:
    s, creds = settings(tmp_path), generate()
    specs = plan(s, creds, Layout(tmp_path), "/venv/bin/agent-sandbox", "/bin/envoy")
    assert [spec.name for spec in specs] == ["localcluster", "extproc", "operator", "envoy"]
    for spec in specs:
        joined = " ".join(spec.argv)
        assert creds.admin_key not in joined and creds.envd_secret not in joined and creds.api_key not in joined
    operator = specs[2]
    assert operator.env == {"AGENT_SANDBOX_ADMIN_KEY": creds.admin_key, "AGENT_SANDBOX_SECRET": creds.envd_secret}
    assert "--extproc-url" in operator.argv and "127.0.0.1:9003" in operator.argv
    assert specs[1].env == operator.env, "extproc verifies the envd tokens the operator hands out"
    assert "--check-envd-token" in specs[1].argv
    assert specs[3].health.unix_socket == str(tmp_path / "run" / "envoy-admin.sock")


def test_exports_are_shell_safe_and_use_the_e2b_spelling(tmp_path: Path) -> None:
    s, creds = settings(tmp_path / "dir with space"), generate()
    lines = export_lines(endpoints(s), creds, Layout(s.state_dir).kubeconfig)
    env = dict(shlex.split(line)[1].split("=", 1) for line in lines)
    assert list(env) == ["E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY", "AGENT_SANDBOX_URL",
                         "AGENT_SANDBOX_API_KEY", "KUBECONFIG"]
    assert env["E2B_API_URL"] == "http://127.0.0.1:8090" and env["E2B_SANDBOX_URL"] == "http://127.0.0.1:8092"
    assert env["E2B_API_KEY"] == "e2b_" + creds.api_key[4:] and env["AGENT_SANDBOX_API_KEY"] == creds.api_key
    assert env["KUBECONFIG"] == str(s.state_dir / "cluster" / "kubeconfig")


def test_backoff_doubles_to_the_cap_and_resets_after_a_stable_run() -> None:
    b = Backoff(base=0.5, cap=4.0, stable_after=60.0)
    assert [b.next_delay(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.next_delay(120.0) == 0.5


def test_pool_and_template_bodies() -> None:
    pool = PoolSettings(replicas=3)
    body = bootstrap.pool_body(pool)
    assert body["metadata"] == {"name": "base", "namespace": "default"}
    assert body["spec"]["replicas"] == 3 and body["spec"]["templateName"] == "base"
    assert body["spec"]["idleImage"] == "agent-sandbox/idle:latest"
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "host"
    assert bootstrap.template_body(pool)["kind"] == "SandboxTemplate"


def test_pool_warm_counts_ready_idle_pods() -> None:
    assert bootstrap.pool_warm(None, 2) == (False, 0)
    assert bootstrap.pool_warm({"status": {"idleReplicas": 2, "unavailableIdleReplicas": 1}}, 2) == (False, 1)
    assert bootstrap.pool_warm({"status": {"idleReplicas": 2}}, 2) == (True, 2)
    assert bootstrap.pool_warm({"status": {}}, 0) == (True, 0)


def test_api_key_import_carries_only_the_hash() -> None:
    creds = generate()
    body = bootstrap.api_key_import_body(creds.api_key, "default")
    assert body["tokenHash"] == hash_api_key(creds.api_key) and body["tokenHash"].startswith(body["hashPrefix"])
    assert creds.api_key[4:] not in str(body)


def test_credentials_are_private_and_kept(tmp_path: Path) -> None:
    first, created = load_or_create(tmp_path)
    again, created_again = load_or_create(tmp_path)
    assert created and not created_again and first == again
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600
    assert first.api_key.startswith("asb_") and "asb_" not in repr(first)


def test_damaged_credentials_are_reported(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text("{not json")
    with pytest.raises(CredentialsError, match="damaged"):
        load_or_create(tmp_path)


def test_envoy_admin_is_a_private_unix_socket(tmp_path: Path) -> None:
    s, creds = settings(tmp_path), generate()
    text = envoyconf.render(s, creds, tmp_path / "admin.sock")
    doc = yaml.safe_load(text)
    assert doc["admin"] == {"address": {"pipe": {"path": str(tmp_path / "admin.sock"), "mode": 0o600}}}
    assert creds.admin_key not in text
    listener = doc["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "127.0.0.1", "port_value": 8092}


def test_a_second_up_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    assert not is_locked(tmp_path)
    with hold_lock(tmp_path):
        assert is_locked(tmp_path)
        with pytest.raises(AlreadyRunning, match="already running"), hold_lock(tmp_path):
            pass
    assert not is_locked(tmp_path)


def test_process_matches_only_the_recorded_program() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while not process_matches(proc.pid, "sleep") and time.monotonic() < deadline:
            time.sleep(0.01)  # between fork and exec the child still runs python
        assert process_matches(proc.pid, "sleep")
        assert not process_matches(proc.pid, "/usr/bin/envoy")
    finally:
        proc.kill()
        proc.wait()
    assert not process_matches(proc.pid, "sleep")


def test_run_record_round_trip(tmp_path: Path) -> None:
    record = RunRecord(pid=1, state_dir=str(tmp_path), endpoints={"api": "http://127.0.0.1:1"}, services={
        "envoy": ServiceRecord(pid=2, argv0="/bin/envoy", ports={"listen": 3}, health_url="http://x/ready",
                               health_socket="/s", log="/l")})
    write_record(tmp_path, record)
    assert read_record(tmp_path) == record
    (tmp_path / "stack.json").write_text("{broken")
    assert read_record(tmp_path) is None


def test_port_and_pool_flags_override_single_keys_of_the_config_file(tmp_path: Path) -> None:
    from agent_sandbox.common.cli import build_parser
    from agent_sandbox.localcluster.stack.cli import settings_from_args

    cfg = tmp_path / "stack.yaml"
    cfg.write_text(yaml.safe_dump({"ports": {"api": 18080, "e2b": 18090}, "pool": {"replicas": 4}}))
    args = build_parser().parse_args(["up", "--state-dir", str(tmp_path), "--config", str(cfg), "--e2b-port", "0",
                                      "--pool-image", "python:3.12"])
    s = settings_from_args(args)
    assert (s.ports.api, s.ports.e2b, s.ports.envoy) == (18080, 0, 8092)
    assert (s.pool.image, s.pool.replicas, s.state_dir) == ("python:3.12", 4, tmp_path.resolve())
