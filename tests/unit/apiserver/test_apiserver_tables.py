"""Table rendering for kubectl get."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_sandbox.localcluster.apiserver.resources import BUILTIN_TYPES, types_from_crd
from agent_sandbox.localcluster.apiserver.tables import human_age, jsonpath, table, wants_table

POD_TYPE = next(rt for rt in BUILTIN_TYPES if rt.kind == "Pod" and not rt.group)


def test_wants_table_only_when_preferred() -> None:
    assert wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not wants_table("application/json")
    assert not wants_table("application/json,application/json;as=Table;v=v1;g=meta.k8s.io")


def test_jsonpath_subset() -> None:
    obj = {"a": {"b": [{"c": 1}], "x/y": "z"}}
    assert jsonpath(obj, ".a.b[0].c") == 1
    assert jsonpath(obj, "{.a['x/y']}") == "z"
    assert jsonpath(obj, ".a.missing.c") is None


def test_human_age() -> None:
    now = datetime(2026, 1, 2, 0, 0, 0, tzinfo=UTC)
    assert human_age("2026-01-01T23:59:30Z", now) == "30s"
    assert human_age("2026-01-01T23:55:00Z", now) == "5m"
    assert human_age("2026-01-01T21:30:00Z", now) == "150m"  # as kubectl prints it
    assert human_age("2026-01-01T18:30:00Z", now) == "5h30m"
    assert human_age("2025-12-30T00:00:00Z", now) == "3d"


def test_pod_rows() -> None:
    pod = {"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n"},
           "status": {"phase": "Running", "podIP": "127.0.0.5", "containerStatuses": [
               {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
               {"name": "b", "ready": False, "restartCount": 1,
                "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}
    rows = table(POD_TYPE, [pod])["rows"]
    assert rows[0]["cells"][:4] == ["p", "1/2", "ImagePullBackOff", 3]
    assert rows[0]["cells"][5:] == ["127.0.0.5", "n"]
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert table(POD_TYPE, [pod], include="None")["rows"][0]["cells"][2] == "Terminating"


def test_custom_printer_columns() -> None:
    crd = {"spec": {"group": "g.io", "scope": "Namespaced", "names": {"plural": "ws", "kind": "W"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "additionalPrinterColumns": [
                        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}]}]}}
    rt = types_from_crd(crd)[0]
    out = table(rt, [{"metadata": {"name": "w"}, "spec": {"replicas": 3}}], headers=True)
    assert [c["name"] for c in out["columnDefinitions"]] == ["Name", "Replicas", "Phase"]
    assert out["rows"][0]["cells"] == ["w", 3, None]
