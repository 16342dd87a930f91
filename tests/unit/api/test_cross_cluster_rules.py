"""Which cluster a request names, and what the cluster directory makes of ``clusters.yaml``."""

from __future__ import annotations

import pytest

from agent_sandbox.common.clusters import CONFIGMAP_KEY, ClusterConfigError, parse_cluster_config
from agent_sandbox.common.ids import new_sandbox_id
from agent_sandbox.operator.crosscluster.directory import ClusterDirectory
from agent_sandbox.operator.crosscluster.routing import named_cluster

FOREIGN = new_sandbox_id("eu2")
DOC = """
clusters:
  - id: home
    name: Home
  - id: eu2
    name: Europe
    gateway:
      nativeURL: https://eu2.example/api/
      e2bURL: https://e2b.eu2.example
      headers: {X-Gateway-Token: t, X-Shared: base}
      e2bHeaders: {X-Shared: e2b}
  - id: hidden
    visible: false
    gateway: {nativeURL: "ftp://nope"}
hostAliases:
  - {ip: 10.0.0.1, hostnames: [eu2.example]}
"""


@pytest.mark.parametrize(("method", "path", "body", "api", "expected"), [
    ("GET", f"/v1/sandboxes/{FOREIGN}", b"", "native", "eu2"),
    ("DELETE", f"/v1/sandboxes/{FOREIGN}/timeout", b"", "native", "eu2"),
    ("POST", "/v1/sandboxes", b'{"poolName": "eu2::python"}', "native", "eu2"),
    ("POST", "/v1/sandboxes", b'{"poolName": "python"}', "native", None),
    ("POST", "/v1/sandboxes", b"{not json", "native", None),
    ("GET", "/v1/sandboxes", b"", "native", None),
    ("GET", "/v1/sandboxpools/eu2::x", b"", "native", None),
    ("GET", f"/sandboxes/{FOREIGN}", b"", "e2b", "eu2"),
    ("POST", f"/v2/sandboxes/{FOREIGN}/connect", b"{}", "e2b", "eu2"),
    ("POST", "/v2/sandboxes", b'{"templateID": "eu2::base//img:1::x"}', "e2b", "eu2"),
    ("POST", "/sandboxes", b'{"templateID": "base//reg:5000/img::tag"}', "e2b", None),
    ("POST", "/sandboxes", b'{"templateID": "::base"}', "e2b", None),
    ("GET", "/sandboxes/metrics", b"", "e2b", None),
    ("GET", "/sandboxes/not-an-id", b"", "e2b", None),
    ("GET", f"/v1/sandboxes/{FOREIGN}", b"", "e2b", None),
])
def test_named_cluster(method, path, body, api, expected):
    assert named_cluster(method, path, body, api) == expected


def test_directory_lists_and_resolves_gateways():
    d = ClusterDirectory("home")
    assert d.listing() == [{"id": "home", "name": "home", "local": True}]
    d.apply_configmap({"data": {CONFIGMAP_KEY: DOC}})
    assert d.listing() == [{"id": "home", "name": "Home", "local": True},
                           {"id": "eu2", "name": "Europe", "local": False}]
    native = d.gateway("eu2", "native")
    e2b = d.gateway("eu2", "e2b")
    assert native is not None and e2b is not None
    assert native.base_url == "https://eu2.example/api"
    assert dict(native.headers) == {"x-gateway-token": "t", "x-shared": "base"}
    assert e2b.base_url == "https://e2b.eu2.example" and dict(e2b.headers)["x-shared"] == "e2b"
    assert d.gateway("hidden", "native") is None, "no usable URL"
    assert d.gateway("home", "native") is None, "never forward to ourselves"
    assert d.gateway("mars", "e2b") is None


def test_a_bad_document_keeps_the_previous_configuration():
    d = ClusterDirectory("home")
    d.apply_configmap({"data": {CONFIGMAP_KEY: DOC}})
    for bad in ("clusters: [", "- just a list", "clusters: [{name: no-id}]"):
        with pytest.raises(ClusterConfigError):
            d.apply_configmap({"data": {CONFIGMAP_KEY: bad}})
        assert d.error and d.gateway("eu2", "e2b") is not None
    d.apply_configmap(None)  # the ConfigMap was deleted: no other clusters
    assert d.error == "" and [c["id"] for c in d.listing()] == ["home"]


def test_shared_parser_reads_every_field():
    config = parse_cluster_config(DOC)
    assert config.host_aliases[0].hostnames == ["eu2.example"]
    eu2 = config.cluster("eu2")
    assert eu2 is not None and eu2.gateway is not None and eu2.gateway.e2b_headers == {"X-Shared": "e2b"}
    assert parse_cluster_config("").clusters == []
