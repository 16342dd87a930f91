"""CRD structural schema: pruning, defaults, validation causes."""

from __future__ import annotations

from agent_sandbox.localcluster.apiserver.schema import prune_and_default, validate

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["replicas"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
                "timeout": {"type": "string", "pattern": "^[0-9]+s$"},
                "nested": {"type": "object", "default": {}, "properties": {"on": {"type": "boolean",
                                                                                  "default": False}}},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "minLength": 1}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "port": {"x-kubernetes-int-or-string": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    },
}


def test_defaults_and_pruning() -> None:
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "extra": 1},
           "spec": {"replicas": 1, "unknown": True, "free": {"anything": {"goes": 1}}}, "junk": 1}
    out = prune_and_default(obj, SCHEMA, top=True)
    assert out["spec"] == {"replicas": 1, "mode": "A", "nested": {"on": False}, "free": {"anything": {"goes": 1}}}
    assert "junk" not in out and out["metadata"] == {"name": "n", "extra": 1} and out["kind"] == "K"
    assert validate(out, SCHEMA, top=True) == []


def test_validation_causes() -> None:
    obj = {"spec": {"replicas": 11, "mode": "C", "timeout": "5m", "tags": ["a", "", "c"], "port": 1.5,
                    "labels": {"a": 1}}}
    fields = sorted(c["field"] for c in validate(obj, SCHEMA, top=True))
    assert fields == ["spec.labels.a", "spec.mode", "spec.port", "spec.replicas", "spec.tags", "spec.tags[1]",
                      "spec.timeout"]
    missing = validate({"spec": {}}, SCHEMA, top=True)
    assert missing == [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.replicas"}]
    assert validate({"spec": {"replicas": True}}, SCHEMA, top=True)[0]["reason"] == "FieldValueTypeInvalid"
    assert validate({"spec": {"replicas": 1, "port": "http"}}, SCHEMA, top=True) == []
