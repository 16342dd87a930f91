"""Label and field selectors, parsed once per request and matched per object.

Grammar follows ``k8s.io/apimachinery/pkg/labels`` (``=``, ``==``, ``!=``,
``in``, ``notin``, ``key``, ``!key``) and ``fields`` (``=``, ``==``, ``!=`` on a
per-resource set of field labels). Parse errors raise ``ValueError`` with a
message the HTTP shell turns into 400 BadRequest.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                     r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.op
        if op == "=":
            return labels.get(self.key) in self.values
        if op == "!=":
            return labels.get(self.key) not in self.values
        if op == "in":
            return labels.get(self.key) in self.values
        if op == "notin":
            return labels.get(self.key) not in self.values
        if op == "exists":
            return self.key in labels
        return self.key not in labels


def _split_terms(text: str) -> list[str]:
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unable to parse requirement: unbalanced ')' in {text!r}")
        elif ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unable to parse requirement: unbalanced '(' in {text!r}")
    terms.append(text[start:])
    return [t.strip() for t in terms]


@functools.lru_cache(maxsize=4096)
def _check_key(key: str) -> str:
    """``key`` if it is a valid label or annotation key (valid keys are remembered: every object of a
    kind carries the same few, and each write checks those it changes)."""
    if not _KEY_RE.match(key) or len(key) > 317:
        raise ValueError(f"invalid label key {key!r}: name part must consist of alphanumeric characters, "
                         "'-', '_' or '.', and must start and end with an alphanumeric character")
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise ValueError(f"invalid label value {value!r}: must be 63 characters or less and consist of "
                         "alphanumeric characters, '-', '_' or '.'")
    return value


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    if not text or not text.strip():
        return ()
    reqs = []
    for term in _split_terms(text):
        if not term:
            raise ValueError(f"unable to parse requirement: empty term in {text!r}")
        m = _SET_RE.match(term)
        if m:
            key, op, inner = m.group(1), m.group(2), m.group(3)
            values = frozenset(_check_value(v.strip()) for v in inner.split(",")) if inner.strip() else frozenset()
            reqs.append(Requirement(_check_key(key), op, values))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            reqs.append(Requirement(_check_key(key.strip()), "!=", frozenset({_check_value(value.strip())})))
        elif "==" in term:
            key, value = term.split("==", 1)
            reqs.append(Requirement(_check_key(key.strip()), "=", frozenset({_check_value(value.strip())})))
        elif "=" in term:
            key, value = term.split("=", 1)
            reqs.append(Requirement(_check_key(key.strip()), "=", frozenset({_check_value(value.strip())})))
        elif term.startswith("!"):
            reqs.append(Requirement(_check_key(term[1:].strip()), "!exists"))
        else:
            reqs.append(Requirement(_check_key(term), "exists"))
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def label_selector_to_string(selector: dict[str, Any] | None) -> str:
    """Render a ``metav1.LabelSelector`` (matchLabels/matchExpressions) in selector text form."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key")
        values = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    path: tuple[str, ...]
    negate: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        cur: Any = obj
        for part in self.path:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            text = ""
        elif isinstance(cur, bool):
            text = "true" if cur else "false"
        else:
            text = str(cur)
        return (text == self.value) != self.negate


def parse_field_selector(text: str | None, allowed: tuple[str, ...], kind: str) -> tuple[FieldRequirement, ...]:
    if not text or not text.strip():
        return ()
    allowed_set = {"metadata.name", "metadata.namespace", *allowed}
    reqs = []
    for term in (t.strip() for t in text.split(",")):
        if "!=" in term:
            field, value = term.split("!=", 1)
            negate = True
        elif "==" in term:
            field, value = term.split("==", 1)
            negate = False
        elif "=" in term:
            field, value = term.split("=", 1)
            negate = False
        else:
            raise ValueError(f"invalid selector: {text!r}; can't understand {term!r}")
        field = field.strip()
        if field not in allowed_set:
            raise ValueError(f'field label not supported: "{field}" for {kind}')
        reqs.append(FieldRequirement(tuple(field.split(".")), negate, value.strip()))
    return tuple(reqs)


def fields_match(reqs: tuple[FieldRequirement, ...], obj: dict[str, Any]) -> bool:
    return all(r.matches(obj) for r in reqs)


def equality_value(reqs: tuple[Requirement, ...], key: str) -> str | None:
    """The single value ``key`` must equal under ``reqs`` (index hint), or None."""
    for r in reqs:
        if r.key == key and r.op in ("=", "in") and len(r.values) == 1:
            return next(iter(r.values))
    return None


def field_equality_value(reqs: tuple[FieldRequirement, ...], path: str) -> str | None:
    parts = tuple(path.split("."))
    for r in reqs:
        if r.path == parts and not r.negate:
            return r.value
    return None
