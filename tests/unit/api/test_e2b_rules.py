"""E2B template grammar, reserved metadata, create-field refusals, list paging and error shapes."""

import orjson
import pytest

from agent_sandbox.common.errors import ApiError
from agent_sandbox.operator.api.errors import e2b_body, error_response, native_body
from agent_sandbox.operator.e2b.listing import decode_token, encode_token, parse_list_query, select_page
from agent_sandbox.operator.e2b.models import NewSandbox, Sandbox, SandboxDetail, refuse_unsupported
from agent_sandbox.operator.e2b.templates import TemplateRef, claim_options, parse_template_id


@pytest.mark.parametrize(("template_id", "expected"), [
    ("base", TemplateRef("base")),
    ("c1::python", TemplateRef("python", "c1")),
    ("python//ghcr.io/org/img:1.2@sha256:abc", TemplateRef("python", "", "ghcr.io/org/img:1.2@sha256:abc")),
    ("c1::python//ubuntu:22.04", TemplateRef("python", "c1", "ubuntu:22.04")),
])
def test_template_grammar(template_id, expected):
    assert parse_template_id(template_id) == expected


@pytest.mark.parametrize("template_id", ["", "Base", "a::b::c", "::p", "p//", "p// bad image"])
def test_template_grammar_rejects(template_id):
    with pytest.raises(ApiError) as err:
        parse_template_id(template_id)
    assert err.value.status == 400


def test_reserved_metadata_is_consumed():
    opts = claim_options({"agentsandbox.io/image": "busybox:1", "agentsandbox.io/startup-timeout": "30",
                          "agentsandbox.io/no-wait": "true", "app": "x"}, TemplateRef("p", image="alpine"))
    assert (opts.image, opts.startup_timeout, opts.wait, opts.metadata) == ("busybox:1", 30, False, {"app": "x"})
    assert claim_options(None, TemplateRef("p", image="alpine")).image == "alpine"
    for bad in ({"agentsandbox.io/startup-timeout": "soon"}, {"agentsandbox.io/other": "1"},
                {"agentsandbox.io/no-wait": "maybe"}):
        with pytest.raises(ApiError):
            claim_options(bad, TemplateRef("p"))


def test_unsupported_create_fields_are_400_and_old_sdk_defaults_pass():
    refuse_unsupported(NewSandbox.model_validate(
        {"templateID": "base", "timeout": 300, "autoPause": False, "secure": True, "allow_internet_access": True,
         "autoPauseMemory": True, "envVars": {}, "metadata": {}}))
    for body in ({"autoPause": True}, {"mcp": {"x": {}}}, {"volumeMounts": [{"name": "v", "path": "/v"}]},
                 {"network": {"egressProxy": {"url": "x"}}}, {"network": {"rules": [{"host": "*.example.com"}]}},
                 {"iam": {"tokens": ["t"]}}, {"autoResume": {"enabled": True}}):
        with pytest.raises(ApiError) as err:
            refuse_unsupported(NewSandbox.model_validate(body))
        assert err.value.status == 400


def test_responses_keep_nullable_fields_and_drop_null_objects():
    wire = Sandbox(templateID="base", sandboxID="c1-x", clientID="ns", envdVersion="0.5.7").wire()
    assert wire["domain"] is None and wire["trafficAccessToken"] is None and "alias" not in wire
    detail = SandboxDetail(templateID="b", sandboxID="s", clientID="c", startedAt="2026-01-01T00:00:00Z",
                           endAt="2026-01-01T00:05:00Z", cpuCount=1, memoryMB=512, envdVersion="0.5.7").wire()
    assert detail["state"] == "running" and detail["domain"] is None and detail["diskSizeMB"] == 0


def test_list_filters_order_and_paging():
    items = [{"sandboxID": f"s{i}", "startedAt": f"2026-01-01T00:00:0{i}Z", "state": "running",
              "metadata": {"user": "a" if i % 2 else "b"}} for i in range(7)]
    q = parse_list_query({"metadata": "user=a", "limit": "2"})
    page, token = select_page(items, q)
    assert [it["sandboxID"] for it in page] == ["s5", "s3"] and token
    page2, token2 = select_page(items, parse_list_query({"metadata": "user=a", "limit": "2", "nextToken": token}))
    assert [it["sandboxID"] for it in page2] == ["s1"] and token2 is None
    assert select_page(items, parse_list_query({"state": "paused"}))[0] == []
    asc, _ = select_page(items, parse_list_query({"order": "asc", "limit": "1"}))
    assert asc[0]["sandboxID"] == "s0"
    assert decode_token(encode_token(40)) == 40
    for bad in ({"state": "dead"}, {"limit": "0"}, {"limit": "x"}, {"nextToken": "!!"}, {"metadata": "a"},
                {"order": "sideways"}):
        with pytest.raises(ApiError):
            parse_list_query(bad)


def test_list_filters_by_template_and_start_time():
    items = [{"sandboxID": f"s{i}", "templateID": "py" if i % 2 else "node", "state": "running", "metadata": {},
              "startedAt": f"2026-01-01T00:00:0{i}Z"} for i in range(6)]
    page, _ = select_page(items, parse_list_query({"template": "py"}))
    assert [it["sandboxID"] for it in page] == ["s5", "s3", "s1"]
    # What the SDK sends: an aware datetime's isoformat(); "at or after"; other offsets compare correctly.
    page, _ = select_page(items, parse_list_query({"startedAfter": "2026-01-01T00:00:03+00:00", "order": "asc"}))
    assert [it["sandboxID"] for it in page] == ["s3", "s4", "s5"]
    page, _ = select_page(items, parse_list_query({"startedAfter": "2026-01-01T01:00:04.5+01:00"}))
    assert [it["sandboxID"] for it in page] == ["s5"]
    # An unencoded "+" arrives as a space.
    assert parse_list_query({"startedAfter": "2026-01-01T00:00:03 00:00"}).started_after is not None
    for bad in ({"startedAfter": "yesterday"}, {"startedAfter": "2026-01-01"},
                {"startedAfter": "2026-01-01T00:00:00"}, {"startedAfter": "2026-13-01T00:00:00Z"},
                {"template": "Not A Template"}):
        with pytest.raises(ApiError) as err:
            parse_list_query(bad)
        assert err.value.status == 400 and err.value.message


def test_error_bodies_and_retry_header():
    err = ApiError(500, "boom", code="Internal")
    resp = error_response(err, e2b_body)
    assert orjson.loads(resp.body) == {"code": 500, "message": "boom"}
    assert resp.headers["Should-Retry"] == "false"
    busy = error_response(ApiError(503, "busy"), native_body)
    assert "Should-Retry" not in busy.headers and orjson.loads(busy.body)["error"] == "busy"
    no_idle = error_response(ApiError(429, "no idle", headers={"Retry-After": "2"}), e2b_body)
    assert no_idle.headers["Retry-After"] == "2" and "Should-Retry" not in no_idle.headers


def test_service_errors_map_to_statuses():
    from agent_sandbox.operator.api.service_errors import api_error_from
    from agent_sandbox.operator.scheduling.errors import NoIdleSandbox
    from agent_sandbox.operator.services.errors import InvalidRequest, NotFound, SandboxStartFailed

    no_idle = api_error_from(NoIdleSandbox("ns", "p", {"idle": 0, "retryAfter": 30}))
    assert no_idle is not None and no_idle.status == 429 and no_idle.headers["Retry-After"] == "30"
    assert api_error_from(NotFound("sandbox x not found")).status == 404
    assert api_error_from(InvalidRequest("bad")).status == 400
    failed = api_error_from(SandboxStartFailed("never usable", "ImagePull", "c1-x"))
    assert failed.status == 500 and error_response(failed, e2b_body).headers["Should-Retry"] == "false"
    assert api_error_from(RuntimeError("x")) is None
