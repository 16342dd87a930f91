"""Target extraction: the four forms, their priority and their 400 messages."""

from __future__ import annotations

import pytest

from agent_sandbox.extproc.targets import Form, Target, TargetError, extract_target

SID = "c1-01jc3k5m7n9p2q4r6s8t0v1w2x"


def test_e2b_headers_win_and_default_to_envd_port() -> None:
    headers = {"e2b-sandbox-id": SID, "x-sandbox-id": "other", "x-sandbox-port": "1", ":path": "/files"}
    assert extract_target(headers) == Target(SID, 49983, Form.E2B_HEADER)
    assert extract_target({"e2b-sandbox-id": SID, "e2b-sandbox-port": "49999"}).port == 49999


def test_x_sandbox_headers_need_both() -> None:
    assert extract_target({"x-sandbox-id": SID, "x-sandbox-port": "8080"}) == Target(SID, 8080, Form.HEADER)
    with pytest.raises(TargetError, match="without x-sandbox-port"):
        extract_target({"x-sandbox-id": SID})
    with pytest.raises(TargetError, match="without x-sandbox-id"):
        extract_target({"x-sandbox-port": "80"})


@pytest.mark.parametrize(("path", "rewritten"), [
    (f"/sandboxes/{SID}/8080/api/x?q=1&r=2", "/api/x?q=1&r=2"),
    (f"/agent-sandbox/api/data/sandboxes/{SID}/8080", "/"),
    (f"/v1/sandboxes/{SID}/8080/?a", "/?a"),
])
def test_path_form_rewrites(path: str, rewritten: str) -> None:
    assert extract_target({":path": path}) == Target(SID, 8080, Form.PATH, rewritten)


def test_sandboxes_in_query_is_not_a_target() -> None:
    with pytest.raises(TargetError, match="no sandbox target"):
        extract_target({":path": "/files?path=/home/user/sandboxes/x/1", ":authority": "127.0.0.1:8092"})


def test_host_form() -> None:
    headers = {":path": "/", ":authority": f"49999-{SID}.sandbox.example.com"}
    assert extract_target(headers) == Target(SID, 49999, Form.HOST)
    assert Form.HOST.is_e2b and Form.E2B_HEADER.is_e2b and not Form.PATH.is_e2b


@pytest.mark.parametrize("headers", [
    {"x-sandbox-id": SID, "x-sandbox-port": "0"},
    {"x-sandbox-id": SID, "x-sandbox-port": "65536"},
    {"x-sandbox-id": SID, "x-sandbox-port": "80a"},
    {"e2b-sandbox-id": "UPPER"},
    {"e2b-sandbox-id": "a" * 64},
    {":path": f"/sandboxes/{SID}"},
    {":path": "/sandboxes//80/x"},
])
def test_malformed_targets_are_400(headers: dict[str, str]) -> None:
    with pytest.raises(TargetError):
        extract_target(headers)
