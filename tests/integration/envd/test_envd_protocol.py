"""envd's wire behaviour below the SDK: auth, /init, codecs, keepalives, re-attach, error codes."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from envd_harness import Envd, connect_call, connect_envelope, start_envd

from agent_sandbox.envd import ENVD_VERSION
from agent_sandbox.envd._gen.filesystem import filesystem_pb

TOKEN = "test-token-0123456789"
AUTH = {"x-access-token": TOKEN}

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def envd_tok() -> Iterator[Envd]:
    server = start_envd(env={"AGENT_SANDBOX_ENVD_ACCESS_TOKEN": TOKEN})
    yield server
    server.close()


def http(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def stdout_of(events: list[tuple[int, dict]]) -> str:
    return b"".join(
        base64.b64decode(m["event"]["data"]["stdout"]) for _, m in events if "data" in m.get("event", {})
    ).decode()


def test_rpcs_need_the_access_token(envd_tok: Envd) -> None:
    status, [(_, body)] = connect_call(envd_tok.url, "process.Process/List", {})
    assert (status, body["code"]) == (401, "unauthenticated")
    status, [(_, body)] = connect_call(envd_tok.url, "process.Process/List", {}, headers={"x-access-token": "x"})
    assert status == 401
    assert connect_call(envd_tok.url, "process.Process/List", {}, headers=AUTH)[0] == 200


def test_http_routes_and_init(envd_tok: Envd) -> None:
    with urllib.request.urlopen(f"{envd_tok.url}/health", timeout=5) as resp:
        assert resp.status == 204 and resp.headers["x-envd-version"] == ENVD_VERSION
    assert http(f"{envd_tok.url}/envs")[0] == 401
    init = json.dumps({"envVars": {"FROM_INIT": "yes"}}).encode()
    assert http(f"{envd_tok.url}/init", "POST", init, {"content-type": "application/json"})[0] == 401, (
        "an initialised envd only accepts /init with its current token"
    )
    assert http(f"{envd_tok.url}/init", "POST", init, {"content-type": "application/json", **AUTH})[0] == 204
    status, body = http(f"{envd_tok.url}/envs", headers=AUTH)
    assert status == 200 and json.loads(body) == {"FROM_INIT": "yes"}
    status, body = http(f"{envd_tok.url}/init", "POST", b"{not json", {"content-type": "application/json", **AUTH})
    assert status == 400 and json.loads(body)["code"] == 400
    status, body = http(f"{envd_tok.url}/metrics", headers=AUTH)
    assert status == 200 and {"cpu_count", "mem_total", "disk_total", "cpu_used_pct"} <= set(json.loads(body))
    _, events = connect_call(envd_tok.url, "process.Process/Start",
                             {"process": {"cmd": "/bin/sh", "args": ["-c", "echo $FROM_INIT"]}}, AUTH, stream=True)
    assert stdout_of(events) == "yes\n"


def test_files_errors_are_json(envd_tok: Envd) -> None:
    status, body = http(f"{envd_tok.url}/files?path=/tmp", headers=AUTH)
    assert status == 400 and json.loads(body)["code"] == 400
    status, body = http(f"{envd_tok.url}/files?path=/nope/x", headers=AUTH)
    assert status == 404 and "does not exist" in json.loads(body)["message"]
    status, body = http(f"{envd_tok.url}/files?path=/etc/hostname")
    assert status == 401, "no token and no signature"
    status, body = http(f"{envd_tok.url}/files", "POST", b"data",
                        {"content-type": "application/octet-stream", **AUTH})
    assert status == 400 and "path" in json.loads(body)["message"]
    form = b'--b\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--b--\r\n'
    status, body = http(f"{envd_tok.url}/files", "POST", form,
                        {"content-type": "multipart/form-data; boundary=b", **AUTH})
    assert status == 400 and "'file'" in json.loads(body)["message"]


def test_binary_proto_codec(envd_tok: Envd) -> None:
    request = urllib.request.Request(
        f"{envd_tok.url}/filesystem.Filesystem/Stat", method="POST",
        data=filesystem_pb.StatRequest(path="/tmp").to_binary(),
        headers={"content-type": "application/proto", "connect-protocol-version": "1", **AUTH},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.headers["content-type"] == "application/proto"
        entry = filesystem_pb.StatResponse.from_binary(resp.read()).entry
    assert entry is not None and entry.name == "tmp" and entry.type == filesystem_pb.FileType.DIRECTORY


def test_error_codes(envd_tok: Envd) -> None:
    status, [(_, body)] = connect_call(envd_tok.url, "filesystem.Filesystem/Stat", {"path": "/nope"}, AUTH)
    assert (status, body["code"]) == (404, "not_found")
    status, [(_, body)] = connect_call(envd_tok.url, "filesystem.Filesystem/MakeDir", {"path": "/tmp"}, AUTH)
    assert (status, body["code"]) == (409, "already_exists")
    status, [(_, body)] = connect_call(envd_tok.url, "filesystem.Filesystem/ListDir", {"path": "/etc/hostname"}, AUTH)
    assert (status, body["code"]) == (400, "invalid_argument")
    status, [(_, body)] = connect_call(envd_tok.url, "process.Process/SendSignal",
                                       {"process": {"pid": 999999}, "signal": "SIGNAL_SIGKILL"}, AUTH)
    assert (status, body["code"]) == (404, "not_found")
    request = urllib.request.Request(
        f"{envd_tok.url}/process.Process/List", method="POST", data=b"{broken",
        headers={"content-type": "application/json", **AUTH},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400, "malformed input is the caller's error, not a 500"
    status, events = connect_call(envd_tok.url, "process.Process/Start",
                                  {"process": {"cmd": "/no/such/binary"}}, AUTH, stream=True)
    assert status == 200 and events[-1][0] == 2 and events[-1][1]["error"]["code"] == "invalid_argument"


def test_keepalive_events(envd_tok: Envd) -> None:
    _, events = connect_call(envd_tok.url, "process.Process/Start",
                             {"process": {"cmd": "/bin/sh", "args": ["-c", "sleep 1.6; echo done"]}},
                             {**AUTH, "keepalive-ping-interval": "1"}, stream=True)
    kinds = [next(iter(m["event"])) for flag, m in events if flag == 0]
    assert kinds[0] == "start" and "keepalive" in kinds and kinds[-1] == "end"
    assert kinds.count("end") == 1


def test_reattach_by_tag_and_list(envd_tok: Envd) -> None:
    first: dict = {}

    def starter() -> None:
        first["result"] = connect_call(
            envd_tok.url, "process.Process/Start",
            {"process": {"cmd": "/bin/sh", "args": ["-c", "sleep 1; echo attached"]}, "tag": "job-1"},
            AUTH, stream=True)

    thread = threading.Thread(target=starter)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        listed: list = []
        while time.monotonic() < deadline and not listed:
            _, [(_, body)] = connect_call(envd_tok.url, "process.Process/List", {}, AUTH)
            listed = [p for p in body.get("processes", []) if p.get("tag") == "job-1"]
        assert listed and listed[0]["config"]["cmd"] == "/bin/sh"
        status, events = connect_call(envd_tok.url, "process.Process/Connect", {"process": {"tag": "job-1"}},
                                      AUTH, stream=True)
        assert status == 200
        assert events[0][1]["event"]["start"]["pid"] == listed[0]["pid"]
        assert stdout_of(events) == "attached\n"
    finally:
        thread.join(10)
    assert stdout_of(first["result"][1]) == "attached\n", "both subscribers see the output"


def test_stream_input_and_close_stdin(envd_tok: Envd) -> None:
    result: dict = {}

    def starter() -> None:
        result["events"] = connect_call(
            envd_tok.url, "process.Process/Start",
            {"process": {"cmd": "/bin/cat"}, "tag": "cat-1", "stdin": True}, AUTH, stream=True)[1]

    thread = threading.Thread(target=starter)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _, [(_, body)] = connect_call(envd_tok.url, "process.Process/List", {}, AUTH)
            if any(p.get("tag") == "cat-1" for p in body.get("processes", [])):
                break
        chunks = [base64.b64encode(text).decode() for text in (b"one ", b"two\n")]
        status, events = connect_call(envd_tok.url, "process.Process/StreamInput", [
            {"start": {"process": {"tag": "cat-1"}}},
            {"data": {"input": {"stdin": chunks[0]}}},
            {"keepalive": {}},
            {"data": {"input": {"stdin": chunks[1]}}},
        ], AUTH, stream=True)
        assert status == 200 and events[-1] == (2, {})
        status, _ = connect_call(envd_tok.url, "process.Process/CloseStdin", {"process": {"tag": "cat-1"}}, AUTH)
        assert status == 200
    finally:
        thread.join(10)
    assert stdout_of(result["events"]) == "one two\n", "input arrives in order; EOF ends cat"


def test_sigterm_stops_envd_and_its_processes() -> None:
    server = start_envd()
    try:
        request = urllib.request.Request(
            f"{server.url}/process.Process/Start", method="POST",
            data=connect_envelope({"process": {"cmd": "/bin/sleep", "args": ["60"]}}),
            headers={"content-type": "application/connect+json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            first = resp.read(5)
            size = int.from_bytes(first[1:5], "big")
            pid = json.loads(resp.read(size))["event"]["start"]["pid"]
        time.sleep(0.2)
        assert Path(f"/proc/{pid}").exists(), "the command survives its client disconnecting"
        server.proc.terminate()
        server.proc.wait(timeout=5)
        deadline = time.monotonic() + 3
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), "envd takes its processes down with it"
    finally:
        server.close()
