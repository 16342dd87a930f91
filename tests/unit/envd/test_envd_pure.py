"""Pure envd logic: paths, exit statuses, Go file modes, /init validation, listen addresses, metrics, env."""

from __future__ import annotations

import os
import signal
import stat

import pytest

from agent_sandbox.envd.config import ConfigError, load_config, parse_listen
from agent_sandbox.envd.exitstatus import from_wait_status
from agent_sandbox.envd.fsinfo import go_file_mode, go_mode_string
from agent_sandbox.envd.metrics import parse_cpu_times, parse_meminfo
from agent_sandbox.envd.paths import PathError, resolve_path
from agent_sandbox.envd.processes import compose_environment
from agent_sandbox.envd.state import EnvdState, InitError, parse_init
from agent_sandbox.envd.watchers import CHMOD, CREATE, REMOVE, RENAME, WRITE, Mask, classify


@pytest.mark.parametrize(("path", "expected"), [
    ("/etc/../tmp/x", "/tmp/x"), ("a/b", "/home/user/a/b"), ("~", "/home/user"), ("~/x", "/home/user/x"),
    ("//srv", "/srv"), (".", "/home/user"),
])
def test_resolve_path(path: str, expected: str) -> None:
    assert resolve_path(path, "/home/user") == expected


def test_resolve_path_rejects_empty_and_nul() -> None:
    for bad in ("", "a\x00b"):
        with pytest.raises(PathError):
            resolve_path(bad, "/home/user")


def test_exit_status_strings_match_go() -> None:
    assert from_wait_status(0).status == "exit status 0" and from_wait_status(0).error is None
    failed = from_wait_status(3 << 8)
    assert (failed.exit_code, failed.exited, failed.status, failed.error) == (3, True, "exit status 3", "exit status 3")
    killed = from_wait_status(signal.SIGKILL)
    assert (killed.exit_code, killed.exited, killed.status) == (-1, False, "signal: killed")
    assert from_wait_status(signal.SIGTERM).status == "signal: terminated"


def test_go_file_mode() -> None:
    assert go_mode_string(go_file_mode(stat.S_IFREG | 0o644)) == "-rw-r--r--"
    assert go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_mode_string(go_file_mode(stat.S_IFDIR | 0o755)) == "drwxr-xr-x"
    assert go_mode_string(go_file_mode(stat.S_IFLNK | 0o777)) == "Lrwxrwxrwx"
    assert go_mode_string(go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777)) == "dtrwxrwxrwx"
    assert go_mode_string(go_file_mode(stat.S_IFCHR | 0o666)) == "Dcrw-rw-rw-"


def test_parse_init_and_apply() -> None:
    init = parse_init({"envVars": {"A": "1"}, "accessToken": "t", "defaultUser": "root",
                       "defaultWorkdir": "/srv", "timestamp": "2026-01-01T00:00:00Z"})
    state = EnvdState()
    state.apply_init(init)
    assert (state.env_vars, state.access_token, state.default_user, state.default_workdir) == (
        {"A": "1"}, "t", "root", "/srv")
    state.apply_init(parse_init({}))
    assert state.env_vars == {"A": "1"}, "fields absent from a later /init are kept"
    assert parse_init(None).env_vars is None


@pytest.mark.parametrize("body", [
    [], {"envVars": {"A": 1}}, {"envVars": {"A=B": "x"}}, {"accessToken": 5}, {"defaultWorkdir": "relative"},
    {"envVars": {"A": "x\x00"}},
])
def test_parse_init_rejects(body: object) -> None:
    with pytest.raises(InitError):
        parse_init(body)


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.2:49983") == ("127.0.0.2", 49983)
    assert parse_listen(":8080") == ("0.0.0.0", 8080)
    assert parse_listen("[::1]:1") == ("::1", 1)
    for bad in ("localhost", "h:x", "h:70000"):
        with pytest.raises(ConfigError):
            parse_listen(bad)
    config = load_config(None, None, {"AGENT_SANDBOX_ENVD_LISTEN": "10.0.0.5:49983"})
    assert (config.host, config.port, config.default_user) == ("10.0.0.5", 49983, "user")
    assert load_config("1.2.3.4:5", "root", {}).default_user == "root"
    assert load_config(None, None, {}).port == 49983


def test_compose_environment_precedence() -> None:
    env = compose_environment(
        base={"PATH": "/image/bin", "HOME": "/root", "AGENT_SANDBOX_ENVD_LISTEN": "x", "KEEP": "1"},
        sandbox_vars={"KEEP": "2", "S": "s"},
        request_vars={"S": "r"},
        login_vars={"HOME": "/home/user", "USER": "user", "PATH": "/default"},
    )
    assert env == {"PATH": "/image/bin", "HOME": "/home/user", "USER": "user", "KEEP": "2", "S": "r"}


def test_watch_event_kinds_follow_fsnotify() -> None:
    assert classify(Mask.CREATE) == CREATE and classify(Mask.MOVED_TO | Mask.ISDIR) == CREATE
    assert classify(Mask.MODIFY) == WRITE and classify(Mask.DELETE) == REMOVE
    assert classify(Mask.MOVED_FROM) == RENAME and classify(Mask.ATTRIB) == CHMOD
    assert classify(Mask.OPEN) is None


def test_metrics_parsers() -> None:
    mem = parse_meminfo("MemTotal:       2048 kB\nMemAvailable:   1024 kB\nHugePages_Total: 0\n")
    assert mem == {"MemTotal": 2048 * 1024, "MemAvailable": 1024 * 1024, "HugePages_Total": 0}
    assert parse_cpu_times("cpu  10 0 5 80 5 0 0 0 0 0\ncpu0 1 1 1 1\n") == (15, 100)
    assert os.cpu_count()
