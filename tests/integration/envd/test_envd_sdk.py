"""The unmodified E2B SDK (three pinned versions, sync and async clients) against a real envd."""

from __future__ import annotations

from pathlib import Path

import pytest
from envd_harness import SDK_VERSIONS, ControlPlane, Envd, run_driver, sdk_env

pytestmark = pytest.mark.timeout(240)


def _sdk(version: str) -> tuple[int, int]:
    major, minor, *_ = version.split(".")
    return int(major), int(minor)


SCENARIOS = "commands,pty,files,errors,wrong_token,async"


@pytest.fixture(scope="module", params=SDK_VERSIONS)
def sdk(request: pytest.FixtureRequest, sdk_pythons: dict[str, Path], envd: Envd, control_plane: ControlPlane):
    """(version, observations by scenario): one driver process per SDK version runs every scenario."""
    version = request.param
    results = run_driver(sdk_pythons[version], SCENARIOS, sdk_env(control_plane, envd.url))
    return version, results.__getitem__


def test_commands(sdk) -> None:
    version, drive = sdk
    r = drive("commands")
    assert r["echo"] == {"stdout": "hello\n", "stderr": "oops\n", "exit_code": 0}
    assert r["nonzero"] == {"type": "CommandExitException", "exit_code": 3}
    assert r["env"] == "c-r", "create envVars (via /init) and per-command envs reach the command"
    assert r["cwd"] == "/tmp"
    assert r["default_cwd"] == "/home/user"
    assert (r["whoami"], r["whoami_root"]) == ("user", "root")
    if _sdk(version) >= (2, 40):  # older SDKs decode each chunk on its own
        assert r["utf8_split"] == "é\n"
    assert r["bg_listed"] and r["bg_alive_after_disconnect"], "a disconnected client must not kill its command"
    assert r["kill"] is True and r["bg_gone_after_kill"]
    assert r["kill_missing"] is False
    assert r["stdin"] == "from stdin\n"
    expected_timeout = {"TimeoutException"} if _sdk(version) >= (2, 40) else {"TimeoutException", "ReadTimeout"}
    assert r["timeout"] in expected_timeout
    assert r["timeout_elapsed"] < 5
    assert r["timeout_killed"], "the command is killed when its Connect deadline passes"


def test_pty(sdk) -> None:
    _, drive = sdk
    r = drive("pty")
    assert r == {"output_has_result": True, "initial_size": True, "resized": True, "killed": True}


def test_files(sdk) -> None:
    version, drive = sdk
    r = drive("files")
    base = f"/home/user/sdk-{version}"
    assert r["write_path"] == f"{base}/dir/a.txt"
    assert r["read_text"] == "hello file" and r["read_stream"] == "hello file"
    assert r["read_bytes"] == [0, 1, 255]
    assert (r["owner"], r["owner_as_root"]) == ("user", "root"), "files are written as the selected user"
    assert r["list_1"] == ["a.txt", "sub"]
    assert r["list_3"] == [f"{base}/dir/a.txt", f"{base}/dir/sub", f"{base}/dir/sub/deeper",
                           f"{base}/dir/sub/deeper/z.txt"]
    assert r["info"] == {"name": "a.txt", "type": "file", "size": 10}
    assert r["exists"] == [True, False]
    assert r["make_dir"] == [True, False], "make_dir on an existing directory returns False"
    assert r["after_rename"] == [False, True]
    assert r["after_remove"] is False
    assert r["stream_roundtrip"] == "file-like upload"
    if _sdk(version) >= (2, 40):
        assert r["gzip_roundtrip"] == "compressed upload"
    assert r["signed_download"] == "file-like upload"
    assert r["signed_upload"] == "signed upload"
    assert r["tampered_download"] == 401
    assert ["w.txt", "create"] in r["watch"] and ["w.txt", "write"] in r["watch"]


def test_error_types(sdk) -> None:
    _, drive = sdk
    assert drive("errors") == {
        "read_missing": "FileNotFoundException",
        "list_missing": "FileNotFoundException",
        "info_missing": "FileNotFoundException",
        "bad_cwd": "InvalidArgumentException",
    }


def test_wrong_access_token(sdk) -> None:
    _, drive = sdk
    assert drive("wrong_token") == {
        "run": "AuthenticationException", "read": "AuthenticationException", "list": "AuthenticationException",
    }


def test_async_client(sdk) -> None:
    _, drive = sdk
    r = drive("async")
    assert r["run"] == "async"
    assert r["nonzero"] == ["CommandExitException", 5]
    assert r["read"] == "async data"
    assert "async.txt" in r["list"]
    assert ["x.txt", "create"] in r["watch"] and ["x.txt", "write"] in r["watch"]
    assert r["kill"] is True
