"""The shipped Envoy config renders, passes `envoy --mode validate`, and keeps the contract settings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from agent_sandbox.extproc.envoy_config import (
    EnvoyPorts,
    envoy_binary,
    extproc_token,
    render,
    template_path,
    validate,
)


def test_template_is_the_deploy_file() -> None:
    assert template_path().name == "envoy.yaml" and template_path().parent.name in ("envoy", "extproc")


def test_rendered_config_is_valid_for_envoy(tmp_path: Path) -> None:
    assert Path(envoy_binary()).is_file()
    path = tmp_path / "envoy.yaml"
    path.write_text(render(EnvoyPorts(listen_port=18092, extproc_port=19002, admin_port=19901)))
    result = validate(path)
    assert result.returncode == 0, result.stderr + result.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(path.read_text().replace("type: ORIGINAL_DST", "type: NO_SUCH_TYPE", 1))
    assert validate(broken).returncode != 0


def test_contract_settings() -> None:
    cfg = yaml.safe_load(render(EnvoyPorts(listen_port=1, extproc_port=2, admin_port=3, extproc_token="tok")))
    listener = cfg["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert listener["address"]["socket_address"]["port_value"] == 1
    assert hcm["stream_idle_timeout"] == "3600s"
    assert hcm["upgrade_configs"] == [{"upgrade_type": "websocket"}]
    ext = hcm["http_filters"][0]["typed_config"]
    assert ext["failure_mode_allow"] is False
    assert ext["grpc_service"]["initial_metadata"] == [{"key": "authorization", "value": "Bearer tok"}]
    assert ext["processing_mode"]["request_header_mode"] == "SEND"
    assert {v for k, v in ext["processing_mode"].items() if k != "request_header_mode"} <= {"SKIP", "NONE"}
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["route"]["cluster"] for r in routes] == [
        "cross_cluster_gateway_tls", "cross_cluster_gateway_plain", "original_dst_cluster", "original_dst_cluster"]
    assert all(r["route"]["timeout"] == "3600s" and r["route"]["idle_timeout"] == "3600s" for r in routes)
    # A dead pooled connection to a recycled sandbox is retried once, but only for safe methods:
    # a reset after the request was written may mean the application received it.
    safe, other = routes[-2:]
    assert safe["match"]["headers"] == [
        {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD|OPTIONS"}}}]
    assert safe["route"]["retry_policy"] == {"retry_on": "reset,connect-failure", "num_retries": 1}
    assert other["match"] == {"prefix": "/"}
    assert other["route"]["retry_policy"] == {
        "retry_on": "connect-failure,refused-stream,reset-before-request", "num_retries": 1}
    assert all("retry_policy" not in r["route"] for r in routes[:-2])
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    options = clusters["original_dst_cluster"]["typed_extension_protocol_options"]
    assert options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["common_http_protocol_options"] == {
        "idle_timeout": "30s"}
    assert clusters["original_dst_cluster"]["original_dst_lb_config"] == {
        "use_http_header": True, "http_header_name": "x-agentsandbox-dst"}
    ep = clusters["ext_proc_cluster"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert ep["endpoint"]["address"]["socket_address"]["port_value"] == 2


def test_extproc_token_is_a_salted_sha256_of_the_admin_key() -> None:
    """The Helm chart computes it with sprig: printf "agent-sandbox extproc:%s" $key | sha256sum."""
    token = extproc_token("k")
    assert token == hashlib.sha256(b"agent-sandbox extproc:k").hexdigest()
