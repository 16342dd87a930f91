"""The chart ships the same CRDs and Envoy config as the rest of the project, and its flags are the real ones."""

from __future__ import annotations

import base64
import os
import pathlib
import shutil
import tarfile

import certifi
import helm_python as helm
import pytest
import yaml
from helm_worker import (
    CHART_DIR,
    CRD_DIR,
    NAMESPACE,
    VALUE_SETS,
    Rendered,
    container_port,
    listen_port,
    local_args,
    pod_spec,
    run_init_containers,
)

from agent_sandbox.common.cli import build_parser
from agent_sandbox.common.settings import load_settings
from agent_sandbox.extproc import envoy_config
from agent_sandbox.extproc.settings import ExtprocSettings
from agent_sandbox.operator.kube.client import KubeClient
from agent_sandbox.operator.settings import OperatorSettings

DATA_PLANE = "agent-sandbox-data-plane"
CUSTOM_DATA_PLANE = {"dataPlane": {
    "envoy": {"port": 18092, "adminPort": 19901, "streamTimeoutSeconds": 600, "extprocStreamsPerConnection": 4},
    "extproc": {"port": 19002, "controlPort": 19003, "healthPort": 18081, "workers": 2, "enableAuth": True,
                "checkEnvdToken": True}}}


def test_chart_crds_are_the_generated_crds(chart):
    shipped = {pathlib.Path(c["filename"]).name: c["data"] for c in chart.crds}
    generated = {p.name: p.read_bytes() for p in sorted(CRD_DIR.glob("*.yaml"))}
    assert set(shipped) == set(generated), "deploy/crds and the chart's crds/ list different files"
    for name, data in generated.items():
        shipped_data = shipped[name]
        shipped_bytes = shipped_data.encode() if isinstance(shipped_data, str) else bytes(shipped_data)
        assert shipped_bytes == data, f"crds/{name} differs from deploy/crds/{name}"


def test_packaged_chart_carries_the_real_files(tmp_path):
    archive = helm.package(CHART_DIR, destination=tmp_path)
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for name in [f"crds/{p.name}" for p in CRD_DIR.glob("*.yaml")] + ["files/envoy.yaml"]:
            member = members[f"agent-sandbox-worker/{name}"]
            assert member.isfile(), f"{name} packaged as a link"
            source = CRD_DIR / pathlib.Path(name).name if name.startswith("crds/") else envoy_config.template_path()
            extracted = tar.extractfile(member)
            assert extracted is not None and extracted.read() == source.read_bytes()


def _envoy_config(r: Rendered, workdir: pathlib.Path) -> str:
    """The config Envoy reads: what the data-plane pod's init container writes where Envoy mounts it."""
    run_init_containers(r, DATA_PLANE, workdir)
    envoy = r.container(DATA_PLANE, "envoy")
    config_arg = envoy["args"][envoy["args"].index("-c") + 1]
    (mounted,) = local_args({"args": [config_arg], "volumeMounts": envoy["volumeMounts"]}, workdir)
    return pathlib.Path(mounted).read_text()


def _token(r: Rendered, secret: str = "agent-sandbox-credentials") -> str:
    return envoy_config.extproc_token(r.secret_value(secret, "admin-key"))


def test_envoy_config_is_the_single_machine_config(rendered, tmp_path):
    # The chart's defaults and the single-machine stack's defaults are the same data plane, with the token
    # derived from the Secret's admin key exactly as the stack derives it.
    r = rendered("default")
    assert _envoy_config(r, tmp_path) == envoy_config.render(envoy_config.EnvoyPorts(extproc_token=_token(r)))


def test_envoy_config_never_lands_in_an_api_object(rendered):
    r = rendered("default")
    token = _token(r)
    assert "${EXTPROC_TOKEN}" in r.get("ConfigMap", "agent-sandbox-envoy-template")["data"]["envoy.yaml"]
    assert not [o for o in r.objects if token in yaml.safe_dump(o)]
    volume = next(v for v in pod_spec(r, DATA_PLANE)["volumes"] if v["name"] == "envoy-config")
    assert volume["emptyDir"]["medium"] == "Memory"
    init = pod_spec(r, DATA_PLANE)["initContainers"][0]
    assert [e["name"] for e in init["env"]] == ["AGENT_SANDBOX_ADMIN_KEY"]  # not the envd secret


def test_existing_secret_fills_the_token_at_pod_start(rendered, tmp_path):
    r = rendered("existing-secret")
    assert r.find("Secret", "my-credentials") is None  # the user's Secret, not the chart's
    key = "asb_user-managed-admin-key-0123456789"
    user_secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "my-credentials"},
                   "data": {"admin-key": base64.b64encode(key.encode()).decode(),
                            "secret": base64.b64encode(b"s").decode()}}
    with_secret = Rendered([*r.objects, user_secret], r.notes)
    config = _envoy_config(with_secret, tmp_path)
    assert config == envoy_config.render(envoy_config.EnvoyPorts(extproc_token=envoy_config.extproc_token(key)))


def test_init_container_refuses_a_secret_without_admin_key(rendered, tmp_path):
    r = rendered("existing-secret")
    user_secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "my-credentials"},
                   "data": {"admin-key": "", "secret": ""}}
    with pytest.raises(AssertionError, match="has no admin-key"):
        run_init_containers(Rendered([*r.objects, user_secret], r.notes), DATA_PLANE, tmp_path)
    assert not (tmp_path / "envoy-config" / "envoy.yaml").exists()


def test_envoy_config_follows_port_values_and_envoy_accepts_it(render_with, tmp_path):
    r = render_with(CUSTOM_DATA_PLANE)
    config = _envoy_config(r, tmp_path)
    assert config == envoy_config.render(envoy_config.EnvoyPorts(
        listen_port=18092, admin_port=19901, extproc_port=19002, stream_timeout=600,
        extproc_streams_per_connection=4, extproc_token=_token(r)))
    result = envoy_config.validate(tmp_path / "envoy-config" / "envoy.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    envoy = r.container(DATA_PLANE, "envoy")
    assert container_port(envoy, "http-data") == 18092
    parsed = yaml.safe_load(config)
    (listener,) = parsed["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 18092


def test_ipv6_envoy_listener_is_accepted_by_envoy(rendered, tmp_path):
    r = rendered("scheduling")
    config = _envoy_config(r, tmp_path)
    assert config == envoy_config.render(envoy_config.EnvoyPorts(listen_address="::", extproc_token=_token(r)))
    result = envoy_config.validate(tmp_path / "envoy-config" / "envoy.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def _parse(args: list[str]):
    try:
        return build_parser().parse_args(args)
    except SystemExit as exc:  # argparse's way of saying "no such flag"
        raise AssertionError(f"the real command rejects {args}") from exc


@pytest.fixture
def credentials_env(monkeypatch):
    """Put the rendered Secret's values where the container env would (secretKeyRef -> env)."""
    def apply(r: Rendered, container: dict) -> None:
        for var in container["env"]:
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                monkeypatch.setenv(var["name"], r.secret_value(ref["name"], ref["key"]))
    for name in [n for n in os.environ if n.startswith("AGENT_SANDBOX_")]:
        monkeypatch.delenv(name)
    return apply


@pytest.mark.parametrize("values", [{}, CUSTOM_DATA_PLANE, {"operator": {"leaderElection": False}},
                                    VALUE_SETS["scheduling"]],
                         ids=["default", "custom-ports", "no-lease", "ipv6"])
def test_container_args_are_accepted_by_the_real_commands(render_with, credentials_env, values, tmp_path):
    r = render_with(values)
    op_container = r.container("agent-sandbox-operator", "operator")
    ext_container = r.container("agent-sandbox-data-plane", "extproc")
    credentials_env(r, op_container)
    op_args = _parse(op_container["args"])
    assert op_args.command == "operator"
    op = load_settings(OperatorSettings, {k: getattr(op_args, k, None) for k in OperatorSettings.model_fields})
    ext_args = _parse(ext_container["args"])
    assert ext_args.command == "extproc"
    ext = load_settings(ExtprocSettings, {k: getattr(ext_args, k, None) for k in ExtprocSettings.model_fields})

    # Both sides hold the same admin key (the operator's bearer on the control plane) from the Secret.
    assert op.admin_key == ext.admin_key_value() == r.secret_value("agent-sandbox-credentials", "admin-key")
    assert ext.secret is not None and ext.secret.get_secret_value() == r.secret_value(
        "agent-sandbox-credentials", "secret")
    assert op.cluster_id == ext.cluster_id == "local"
    assert op.leader_elect is (values.get("operator", {}).get("leaderElection", True))
    extproc_values = values.get("dataPlane", {}).get("extproc", {})
    assert ext.workers == extproc_values.get("workers", 2)
    assert ext.enable_auth is extproc_values.get("enableAuth", False)
    assert ext.check_envd_token is extproc_values.get("checkEnvdToken", False)

    # Every listener is on the port the Deployment declares and the Services target.
    assert listen_port(op.api_listen) == container_port(op_container, "http-api")
    assert listen_port(op.e2b_listen) == container_port(op_container, "http-e2b")
    assert listen_port(op.metrics_listen) == container_port(op_container, "http-metrics")
    assert listen_port(ext.control_listen) == container_port(ext_container, "grpc-control")
    assert listen_port(ext.health_listen) == container_port(ext_container, "http-health")
    assert ext.listen.startswith("127.0.0.1:")  # Envoy is in the same pod; nobody else reaches ext_proc

    # Envoy's ext_proc cluster points at extproc's listener.
    envoy = yaml.safe_load(_envoy_config(r, tmp_path))
    ext_cluster = next(c for c in envoy["static_resources"]["clusters"] if c["name"] == "ext_proc_cluster")
    sock = ext_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert f"{sock['address']}:{sock['port_value']}" == ext.listen
    # ...and presents the bearer this extproc accepts (derived from the same admin key).
    (ext_filter,) = [f for f in envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["http_filters"] if f["name"] == "envoy.filters.http.ext_proc"]
    metadata = ext_filter["typed_config"]["grpc_service"]["initial_metadata"]
    assert metadata == [{"key": "authorization",
                         "value": f"Bearer {envoy_config.extproc_token(ext.admin_key_value() or '')}"}]

    # The operator dials the control plane through the extproc Service.
    host, _, port = op.extproc_url.rpartition(":")
    assert host == f"agent-sandbox-extproc.{NAMESPACE}.svc.cluster.local"
    svc_port = r.get("Service", "agent-sandbox-extproc")["spec"]["ports"][0]
    assert int(port) == svc_port["port"] and svc_port["targetPort"] == "grpc-control"
    assert op.gateway_base_url == f"http://agent-sandbox-data-plane.{NAMESPACE}.svc.cluster.local"

    # The kubeconfig flag points into the mounted ConfigMap; extproc uses the in-cluster service account.
    mount = next(m for m in op_container["volumeMounts"] if m["name"] == "kubeconfig")
    assert op.kubeconfig == f"{mount['mountPath']}/kubeconfig"
    assert ext.kubeconfig is None
    assert ext.apikey_namespace == NAMESPACE


async def test_operator_kubeconfig_is_understood_by_the_kubernetes_client(rendered, tmp_path):
    """The operator's client library turns the chart's kubeconfig into in-cluster access (service-account files)."""
    kubeconfig = yaml.safe_load(rendered("default").get("ConfigMap", "agent-sandbox-operator-kubeconfig")["data"][
        "kubeconfig"])
    user = kubeconfig["users"][0]["user"]
    cluster = kubeconfig["clusters"][0]["cluster"]
    assert user["tokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert cluster["certificate-authority"] == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    # Same document, with the service-account files of this test in place of the pod's.
    (tmp_path / "token").write_text("sa-token-123")
    shutil.copy(certifi.where(), tmp_path / "ca.crt")  # any valid PEM bundle stands in for the cluster CA
    user["tokenFile"] = str(tmp_path / "token")
    cluster["certificate-authority"] = str(tmp_path / "ca.crt")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    kube = await KubeClient.from_kubeconfig(str(path))  # exactly how the operator builds its client
    configuration = kube._api.configuration
    await kube.close()
    assert configuration.host == "https://kubernetes.default.svc"
    assert configuration.api_key["BearerToken"] == "Bearer sa-token-123"
    assert configuration.ssl_ca_cert == str(tmp_path / "ca.crt")
