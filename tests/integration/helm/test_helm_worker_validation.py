"""`helm lint` is clean, the values schema refuses bad input, and every object is valid Kubernetes."""

from __future__ import annotations

import pathlib

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from helm_worker import CHART_DIR, CRD_DIR, NAMESPACE, VALUE_SETS

from agent_sandbox.common.ids import MAX_CLUSTER_ID_LEN

KUBE_VERSION = kubernetes_validate.latest_version()
#: Kinds from CRDs of other projects: no schema here, their shape is asserted in test_helm_worker_objects.
FOREIGN_KINDS = {"ServiceMonitor", "HTTPRoute"}


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_is_clean(value_set):
    report = helm.lint(CHART_DIR, VALUE_SETS[value_set], strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems


def _crd_schemas() -> dict[tuple[str, str], dict]:
    schemas = {}
    for path in CRD_DIR.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def test_crds_validate_as_kubernetes_objects():
    for path in sorted(CRD_DIR.glob("*.yaml")):
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), KUBE_VERSION, strict=True)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_rendered_object_validates(rendered, value_set):
    crds = _crd_schemas()
    for obj in rendered(value_set).objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in FOREIGN_KINDS:
            continue
        crd_schema = crds.get((obj["apiVersion"], obj["kind"]))
        if crd_schema is not None:
            try:
                jsonschema.validate(obj, crd_schema)
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{where} does not match its CRD: {exc.message}")
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} is not valid Kubernetes {KUBE_VERSION}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize(("values", "message"), [
    ({"clusterId": "a" * (MAX_CLUSTER_ID_LEN + 1)}, "clusterId"),
    ({"clusterId": "Prod_EU"}, "clusterId"),
    ({"operator": {"replicaz": 2}}, "replicaz"),
    ({"dataPlane": {"envoy": {"port": 70000}}}, "port"),
    ({"dataPlane": {"extproc": {"workers": 0}}}, "workers"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"operator": {"gatewayBaseUrl": "data-plane:8092"}}, "gatewayBaseUrl"),
])
def test_values_schema_rejects_mistakes_with_a_pointer(chart, values, message):
    with pytest.raises(helm.HelmValuesError, match=message):
        chart.render(values, name="agent-sandbox", namespace=NAMESPACE)


def test_longest_cluster_id_is_accepted(chart):
    chart.validate_schema({"clusterId": "a" * MAX_CLUSTER_ID_LEN})


def test_values_file_documents_every_top_level_key(chart):
    schema = chart.schema
    assert schema is not None
    defaults = yaml.safe_load(pathlib.Path(CHART_DIR / "values.yaml").read_text())
    assert set(defaults) <= set(schema["properties"])
    chart.validate_schema(defaults)
