"""The committed CRD manifests are current and valid Kubernetes objects."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from agent_sandbox.common.crds import all_crds, render_yaml

CRD_DIR = Path(__file__).resolve().parents[3] / "deploy" / "crds"


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_committed_manifest_is_current(name):
    assert (CRD_DIR / name).read_text() == render_yaml(all_crds()[name]), "run scripts/gen-crds"


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_manifest_validates_against_kubernetes_schema(name):
    doc = yaml.safe_load((CRD_DIR / name).read_text())
    kubernetes_validate.validate(doc, "1.33", strict=True)


def test_pool_crd_shape():
    crd = all_crds()["agentsandbox.io_sandboxpools.yaml"]
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["sbp"]
    assert crd["spec"]["scope"] == "Namespaced"
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    cols = [c["name"] for c in version["additionalPrinterColumns"]]
    assert cols == ["Phase", "Replicas", "Idle", "Unavail", "Running", "Starting", "Stopping", "Failed", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["podCreationImagePolicy"]["default"] == "IdleImage"
    assert spec["properties"]["replicas"]["minimum"] == 0


def test_template_crd_is_cluster_scoped():
    crd = all_crds()["agentsandbox.io_sandboxtemplates.yaml"]
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["sbt"]
