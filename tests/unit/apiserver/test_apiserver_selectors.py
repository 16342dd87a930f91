"""Label and field selector parsing and matching."""

from __future__ import annotations

import pytest

from agent_sandbox.localcluster.apiserver.selectors import (
    fields_match,
    label_selector_to_string,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True),
    ("app in (web, db)", {"app": "db"}, True),
    ("app notin (web,db)", {"app": "db"}, False),
    ("app notin (web)", {}, True),
    ("canary", {"canary": ""}, True),
    ("!canary", {"canary": "x"}, False),
    ("app=web,tier in (a),!canary", {"app": "web", "tier": "a"}, True),
    ("agentsandbox.io/sandbox-phase=idle", {"agentsandbox.io/sandbox-phase": "idle"}, True),
    ("", {"anything": "x"}, True),
])
def test_label_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), labels) is expected


@pytest.mark.parametrize("bad", ["app in (web", "a b", "=x", "app=bad value", ",", "app in web)"])
def test_bad_label_selectors_raise(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_label_selector(bad)


def test_field_selector() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    allowed = ("spec.nodeName", "status.phase")
    assert fields_match(parse_field_selector("spec.nodeName=n1,status.phase!=Pending", allowed, "Pod"), pod)
    assert not fields_match(parse_field_selector("metadata.name==q", allowed, "Pod"), pod)
    assert fields_match(parse_field_selector("spec.schedulerName=", ("spec.schedulerName",), "Pod"), pod)
    with pytest.raises(ValueError, match="not supported"):
        parse_field_selector("spec.color=red", allowed, "Pod")
    with pytest.raises(ValueError):
        parse_field_selector("justaword", allowed, "Pod")


def test_label_selector_object_to_string() -> None:
    text = label_selector_to_string({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "c", "operator": "In", "values": ["y", "x"]}, {"key": "d", "operator": "DoesNotExist"}]})
    assert text == "a=1,b=2,c in (x,y),!d"
    assert labels_match(parse_label_selector(text), {"a": "1", "b": "2", "c": "x"})
