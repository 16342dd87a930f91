"""Structural-schema handling for custom resources: pruning, defaulting, validation.

Mirrors what apiextensions-apiserver does with a CRD's ``openAPIV3Schema`` on
every write: drop unknown fields (unless ``x-kubernetes-preserve-unknown-fields``),
apply ``default`` values, then validate ``type``, ``enum``, numeric bounds,
string/array sizes, ``pattern`` and ``required``. Validation returns causes
(``field``/``message``) that become a 422 Invalid ``Status``.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from .errors import cause

_TOP_LEVEL = ("apiVersion", "kind", "metadata")


def _is_type(value: Any, type_name: str) -> bool:
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _keeps_unknown(schema: dict[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields")) or schema.get("x-kubernetes-embedded-resource")


def prune_and_default(value: Any, schema: dict[str, Any] | None, top: bool = False) -> Any:
    """Return ``value`` with unknown fields dropped and defaults filled in (mutates containers)."""
    if not schema:
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        if props is not None:
            if not _keeps_unknown(schema) and not isinstance(additional, dict) and additional is not True:
                for key in [k for k in value if k not in props and not (top and k in _TOP_LEVEL)]:
                    del value[key]
            for key, sub in props.items():
                if key not in value and isinstance(sub, dict) and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                if key in value and not (top and key == "metadata"):
                    value[key] = prune_and_default(value[key], sub)
        elif isinstance(additional, dict):
            for key in list(value):
                value[key] = prune_and_default(value[key], additional)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [prune_and_default(v, items) for v in value]
    return value


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _validate_scalar(value: Any, schema: dict[str, Any], path: str, causes: list[dict[str, str]]) -> None:
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        allowed = ", ".join(f'"{e}"' if isinstance(e, str) else str(e) for e in enum)
        causes.append(cause(path, f"Unsupported value: {value!r}: supported values: {allowed}",
                            "FieldValueNotSupported"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if minimum is not None:
            exclusive = schema.get("exclusiveMinimum") is True
            if value < minimum or (exclusive and value == minimum):
                op = "greater than" if exclusive else "greater than or equal to"
                causes.append(cause(path, f"Invalid value: {value}: {path} in body should be {op} {minimum}"))
        if maximum is not None:
            exclusive = schema.get("exclusiveMaximum") is True
            if value > maximum or (exclusive and value == maximum):
                op = "less than" if exclusive else "less than or equal to"
                causes.append(cause(path, f"Invalid value: {value}: {path} in body should be {op} {maximum}"))
    if isinstance(value, str):
        if schema.get("minLength") is not None and len(value) < schema["minLength"]:
            causes.append(cause(path, f"Invalid value: {value!r}: {path} in body should be at least "
                                      f"{schema['minLength']} chars long"))
        if schema.get("maxLength") is not None and len(value) > schema["maxLength"]:
            causes.append(cause(path, f"Too long: may not be more than {schema['maxLength']} bytes",
                                "FieldValueTooLong"))
        if schema.get("pattern") and not _pattern(schema["pattern"]).search(value):
            causes.append(cause(path, f"Invalid value: {value!r}: {path} in body should match "
                                      f"'{schema['pattern']}'"))


def validate(value: Any, schema: dict[str, Any] | None, path: str = "", top: bool = False) -> list[dict[str, str]]:
    """Causes for every violation of ``schema`` in ``value`` (empty list = valid)."""
    causes: list[dict[str, str]] = []
    if schema:
        _validate(value, schema, path, causes, top)
    return causes


def _validate(value: Any, schema: dict[str, Any], path: str, causes: list[dict[str, str]], top: bool) -> None:
    if value is None:
        if not schema.get("nullable"):
            causes.append(cause(path, f"Invalid value: \"null\": {path} in body must be of type "
                                      f"{schema.get('type', 'object')}", "FieldValueTypeInvalid"))
        return
    type_name = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _is_type(value, "integer")):
            causes.append(cause(path, f"Invalid value: {value!r}: {path} in body must be of type int-or-string",
                                "FieldValueTypeInvalid"))
            return
    elif type_name and not _is_type(value, type_name):
        causes.append(cause(path, f"Invalid value: {_describe(value)}: {path or 'body'} in body must be of type "
                                  f"{type_name}", "FieldValueTypeInvalid"))
        return
    if isinstance(value, dict):
        for req in schema.get("required") or []:
            if req not in value:
                causes.append(cause(f"{path}.{req}" if path else req, "Required value", "FieldValueRequired"))
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, sub in value.items():
            if top and key in _TOP_LEVEL:
                continue
            sub_schema = props.get(key) if key in props else (additional if isinstance(additional, dict) else None)
            if sub_schema:
                _validate(sub, sub_schema, f"{path}.{key}" if path else key, causes, False)
    elif isinstance(value, list):
        if schema.get("minItems") is not None and len(value) < schema["minItems"]:
            causes.append(cause(path, f"Invalid value: {len(value)}: {path} in body should have at least "
                                      f"{schema['minItems']} items"))
        if schema.get("maxItems") is not None and len(value) > schema["maxItems"]:
            causes.append(cause(path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                                "FieldValueTooMany"))
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _validate(item, items, f"{path}[{i}]", causes, False)
    else:
        _validate_scalar(value, schema, path, causes)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return str(value)
