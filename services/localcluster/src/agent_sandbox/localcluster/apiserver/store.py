"""The object store: current state, resourceVersions, the event log and watch fan-out.

One global counter gives every write a new ``resourceVersion`` (like etcd's
revision). State lives in dicts keyed by storage key and ``(namespace, name)``,
with secondary indexes on the pool label and on ``spec.nodeName`` so the
operator's and node agents' hot lists do not scan every Pod. Each stored object
is immutable once committed and kept with its serialized bytes, so reads and
watch events reuse the bytes and callers copy with ``orjson.loads(raw)``.

All methods are synchronous and run on the event loop: a read-check-write
sequence without ``await`` is atomic, which is what makes resourceVersion
preconditions and "register watcher + replay" race-free without locks.

Deletion follows kube-apiserver: objects with finalizers (and Pods bound to a
node, which the node agent must confirm) get ``deletionTimestamp`` and stay
until the last finalizer goes; removal garbage-collects dependents through
``ownerReferences`` (background propagation, or orphaning on request).
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from agent_sandbox.common.vocabulary import LABEL_SANDBOX_POOL

from .errors import already_exists, bad_request, conflict, expired, forbidden, not_found
from .resources import ResourceType
from .selectors import (
    FieldRequirement,
    Requirement,
    equality_value,
    field_equality_value,
    fields_match,
    labels_match,
)
from .strategy import now
from .watchers import ADDED, DELETED, MODIFIED, Watcher

Key = tuple[str, str]  # (namespace or "", name)
PersistHook = Callable[[str, Key, bytes | None, int], None]


@dataclass(slots=True)
class Entry:
    obj: dict[str, Any]
    raw: bytes


@dataclass(slots=True)
class LogEvent:
    rv: int
    key: str
    kind: str
    obj: dict[str, Any]
    raw: bytes
    old: dict[str, Any] | None


@dataclass(slots=True)
class ListResult:
    items: list[Entry]
    rv: int
    continue_token: str | None
    remaining: int | None


def _is_pod(rt_key: str) -> bool:
    return rt_key == "pods"


def _encode_continue(rv: int, last: Key) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"rv": rv, "start": list(last)})).decode()


def _decode_continue(token: str) -> tuple[int, Key]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode() + b"==="))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError, orjson.JSONDecodeError) as exc:
        raise bad_request(f"continue key is not valid: {exc}") from exc


class Store:
    def __init__(self, *, event_log_size: int = 10_000, watch_queue_size: int = 20_000,
                 persist: PersistHook | None = None, initial_rv: int = 0) -> None:
        self.rv = initial_rv
        self._data: dict[str, dict[Key, Entry]] = {}
        self._log: deque[LogEvent] = deque()
        self._log_size = event_log_size
        self._log_floor = initial_rv  # every event with rv > floor is in the log
        self._watch_queue_size = watch_queue_size
        self._watchers: dict[str, set[Watcher]] = {}
        self._persist = persist
        self._pool_index: dict[str, dict[str, set[Key]]] = {}
        self._node_index: dict[str, set[Key]] = {}
        self._uids: dict[str, tuple[str, Key]] = {}
        self._dependents: dict[str, set[tuple[str, Key]]] = {}
        self._orphan_uids: set[str] = set()
        self.on_removed: list[Callable[[str, dict[str, Any]], None]] = []

    # ----- loading -------------------------------------------------------------------------

    def load(self, key: str, raw: bytes) -> None:
        """Insert a persisted object as-is (startup only: no events, no persistence)."""
        obj = orjson.loads(raw)
        meta = obj["metadata"]
        k = (meta.get("namespace") or "", meta["name"])
        self._index(key, k, None, obj)
        self._data.setdefault(key, {})[k] = Entry(obj, raw)
        self.rv = max(self.rv, int(meta.get("resourceVersion") or 0))
        self._log_floor = self.rv

    # ----- reads ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Entry:
        entry = self._data.get(rt.key, {}).get((namespace or "", name))
        if entry is None:
            raise not_found(rt.plural, rt.group, name)
        return entry

    def find(self, key: str, namespace: str | None, name: str) -> Entry | None:
        return self._data.get(key, {}).get((namespace or "", name))

    def _candidates(self, rt: ResourceType, namespace: str | None, labels: tuple[Requirement, ...],
                    fields: tuple[FieldRequirement, ...]) -> Iterable[tuple[Key, Entry]]:
        bucket = self._data.get(rt.key, {})
        pool = equality_value(labels, LABEL_SANDBOX_POOL)
        keys: Iterable[Key] | None = None
        if pool is not None:
            keys = self._pool_index.get(rt.key, {}).get(pool, set())
        elif _is_pod(rt.key):
            node = field_equality_value(fields, "spec.nodeName")
            if node:
                keys = self._node_index.get(node, set())
        if keys is None:
            items: Iterable[tuple[Key, Entry]] = bucket.items()
        else:
            items = ((k, bucket[k]) for k in keys if k in bucket)
        if namespace is not None:
            items = ((k, e) for k, e in items if k[0] == namespace)
        return items

    def list(self, rt: ResourceType, namespace: str | None, labels: tuple[Requirement, ...] = (),
             fields: tuple[FieldRequirement, ...] = (), limit: int = 0, continue_token: str | None = None,
             ) -> ListResult:
        start: Key | None = None
        if continue_token:
            token_rv, start = _decode_continue(continue_token)
            if token_rv < self._log_floor:
                raise expired("The provided continue parameter is too old to display a consistent list result. "
                              "You can start a new list without the continue parameter.")
        matched = [
            (k, e) for k, e in self._candidates(rt, namespace, labels, fields)
            if (not labels or labels_match(labels, e.obj["metadata"].get("labels")))
            and (not fields or fields_match(fields, e.obj))
            and (start is None or k > start)
        ]
        matched.sort(key=lambda item: item[0])
        if limit and len(matched) > limit:
            page = matched[:limit]
            token = _encode_continue(self.rv, page[-1][0])
            return ListResult([e for _, e in page], self.rv, token, len(matched) - limit)
        return ListResult([e for _, e in matched], self.rv, None, None)

    def check_list_rv(self, rv_text: str | None, match: str | None) -> None:
        """410 for an exact-match list at a revision this server no longer has (as etcd after compaction)."""
        if match == "Exact" and rv_text:
            rv = _parse_rv(rv_text)
            if rv != self.rv and rv < max(self._log_floor, self.rv):
                raise expired(f"too old resource version: {rv} ({self.rv})")

    # ----- writes --------------------------------------------------------------------------

    def _commit(self, key: str, k: Key, obj: dict[str, Any], kind: str, old: dict[str, Any] | None) -> Entry:
        self.rv += 1
        rv = self.rv
        obj["metadata"]["resourceVersion"] = str(rv)
        raw = orjson.dumps(obj)
        entry = Entry(obj, raw)
        bucket = self._data.setdefault(key, {})
        self._index(key, k, old, obj if kind != DELETED else None)
        if kind == DELETED:
            bucket.pop(k, None)
        else:
            bucket[k] = entry
        self._record(LogEvent(rv, key, kind, obj, raw, old))
        if self._persist is not None:
            self._persist(key, k, None if kind == DELETED else raw, rv)
        return entry

    def _record(self, event: LogEvent) -> None:
        log = self._log
        log.append(event)
        if len(log) > self._log_size:
            self._log_floor = log.popleft().rv
        for watcher in self._watchers.get(event.key, ()):
            watcher.offer(event.kind, event.obj, event.raw, event.old)

    def _index(self, key: str, k: Key, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        old_meta = old["metadata"] if old else {}
        new_meta = new["metadata"] if new else {}
        old_pool = (old_meta.get("labels") or {}).get(LABEL_SANDBOX_POOL)
        new_pool = (new_meta.get("labels") or {}).get(LABEL_SANDBOX_POOL)
        if old_pool != new_pool:
            pools = self._pool_index.setdefault(key, {})
            if old_pool is not None:
                _discard(pools, old_pool, k)
            if new_pool is not None:
                pools.setdefault(new_pool, set()).add(k)
        if _is_pod(key):
            old_node = ((old or {}).get("spec") or {}).get("nodeName")
            new_node = ((new or {}).get("spec") or {}).get("nodeName")
            if old_node != new_node:
                if old_node:
                    _discard(self._node_index, old_node, k)
                if new_node:
                    self._node_index.setdefault(new_node, set()).add(k)
        old_uid, new_uid = old_meta.get("uid"), new_meta.get("uid")
        if new_uid:
            self._uids[new_uid] = (key, k)
        elif old_uid:
            self._uids.pop(old_uid, None)
            self._orphan_uids.discard(old_uid)
        old_owners = {r.get("uid") for r in old_meta.get("ownerReferences") or []}
        new_owners = {r.get("uid") for r in new_meta.get("ownerReferences") or []}
        if old_owners != new_owners:
            for uid in old_owners - new_owners:
                _discard(self._dependents, uid, (key, k))
            for uid in new_owners - old_owners:
                if uid:
                    self._dependents.setdefault(uid, set()).add((key, k))

    def create(self, rt: ResourceType, obj: dict[str, Any], dry_run: bool = False) -> Entry:
        meta = obj["metadata"]
        k = (meta.get("namespace") or "", meta["name"])
        if rt.namespaced:
            ns = self._data.get("namespaces", {}).get(("", k[0]))
            if ns is None:
                raise not_found("namespaces", "", k[0])
            if ns.obj["metadata"].get("deletionTimestamp"):
                raise forbidden(f'{rt.plural} "{k[1]}" is forbidden: unable to create new content in namespace '
                                f"{k[0]} because it is being terminated")
        if k in self._data.get(rt.key, {}):
            raise already_exists(rt.plural, rt.group, k[1])
        if dry_run:
            meta["resourceVersion"] = str(self.rv)
            return Entry(obj, orjson.dumps(obj))
        return self._commit(rt.key, k, obj, ADDED, None)

    def exists(self, rt: ResourceType, namespace: str | None, name: str) -> bool:
        return (namespace or "", name) in self._data.get(rt.key, {})

    def replace(self, rt: ResourceType, old: Entry, new: dict[str, Any], dry_run: bool = False) -> Entry:
        """Commit ``new`` in place of ``old`` (which must be the current entry)."""
        meta = new["metadata"]
        k = (meta.get("namespace") or "", meta["name"])
        if self._data.get(rt.key, {}).get(k) is not old:
            raise conflict(rt.plural, rt.group, k[1])
        if dry_run:
            meta["resourceVersion"] = old.obj["metadata"]["resourceVersion"]
            return Entry(new, orjson.dumps(new))
        entry = self._commit(rt.key, k, new, MODIFIED, old.obj)
        if (meta.get("deletionTimestamp") and not meta.get("finalizers")
                and not meta.get("deletionGracePeriodSeconds")):
            if rt.key == "namespaces":
                self._finish_namespace(k[1])
            else:
                self._remove(rt.key, k, entry)
        return entry

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *, grace: int | None = None,
               propagation: str | None = None, preconditions: dict[str, Any] | None = None,
               dry_run: bool = False) -> tuple[Entry, bool]:
        """Delete or start deleting an object; returns (latest entry, removed now)."""
        entry = self.get(rt, namespace, name)
        meta = entry.obj["metadata"]
        if preconditions:
            uid, rv = preconditions.get("uid"), preconditions.get("resourceVersion")
            if uid and uid != meta.get("uid"):
                raise conflict(rt.plural, rt.group, name, f"Precondition failed: UID in precondition: {uid}, "
                                                           f"UID in object meta: {meta.get('uid')}")
            if rv and rv != meta.get("resourceVersion"):
                raise conflict(rt.plural, rt.group, name, "Precondition failed: ResourceVersion in precondition: "
                                                           f"{rv}, ResourceVersion in object meta: "
                                                           f"{meta.get('resourceVersion')}")
        if dry_run:
            return entry, False
        if propagation == "Orphan":
            self._orphan_uids.add(meta["uid"])
        return self._delete_entry(rt.key, (namespace or "", name), entry, grace)

    def _delete_entry(self, key: str, k: Key, entry: Entry, grace: int | None) -> tuple[Entry, bool]:
        meta = entry.obj["metadata"]
        if key == "namespaces":
            return self._delete_namespace(k, entry)
        pod_grace = 0
        if _is_pod(key) and (entry.obj.get("spec") or {}).get("nodeName"):
            default = (entry.obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            pod_grace = max(0, grace if grace is not None else int(default or 0))
            phase = (entry.obj.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                pod_grace = 0
        if not meta.get("finalizers") and pod_grace == 0:
            return self._remove(key, k, entry), True
        current_grace = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and (current_grace is None or pod_grace >= current_grace):
            return entry, False
        new = orjson.loads(entry.raw)
        new_meta = new["metadata"]
        stamp = datetime.now(UTC) + timedelta(seconds=pod_grace)
        new_meta["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        new_meta["deletionGracePeriodSeconds"] = pod_grace
        updated = self._commit(key, k, new, MODIFIED, entry.obj)
        if pod_grace == 0 and not new_meta.get("finalizers"):
            return self._remove(key, k, updated), True
        return updated, False

    def _remove(self, key: str, k: Key, entry: Entry) -> Entry:
        obj = orjson.loads(entry.raw)
        uid = obj["metadata"].get("uid")
        orphan = uid in self._orphan_uids
        removed = self._commit(key, k, obj, DELETED, entry.obj)
        self._collect_dependents(uid, orphan)
        for hook in self.on_removed:
            hook(key, obj)
        if k[0] and key != "namespaces":
            self._finish_namespace(k[0])
        return removed

    def _collect_dependents(self, uid: str | None, orphan: bool) -> None:
        for dep_key, dep_k in sorted(self._dependents.pop(uid or "", set())):
            entry = self._data.get(dep_key, {}).get(dep_k)
            if entry is None:
                continue
            refs = entry.obj["metadata"].get("ownerReferences") or []
            if orphan:
                new = orjson.loads(entry.raw)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self._commit(dep_key, dep_k, new, MODIFIED, entry.obj)
                continue
            if any(r.get("uid") != uid and r.get("uid") in self._uids for r in refs):
                continue  # another owner is still alive
            self._delete_entry(dep_key, dep_k, entry, None)

    # ----- namespaces ----------------------------------------------------------------------

    def _delete_namespace(self, k: Key, entry: Entry) -> tuple[Entry, bool]:
        """Namespaces: delete the contents, stay Terminating until they (and finalizers) are gone."""
        namespace = k[1]
        if not entry.obj["metadata"].get("deletionTimestamp"):
            new = orjson.loads(entry.raw)
            new["metadata"]["deletionTimestamp"] = now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new.setdefault("status", {})["phase"] = "Terminating"
            entry = self._commit("namespaces", k, new, MODIFIED, entry.obj)
            self._delete_namespace_contents(namespace)
        current = self._data.get("namespaces", {}).get(k)
        if current is None:
            return entry, True
        if not current.obj["metadata"].get("finalizers") and self.namespace_empty(namespace):
            return self._remove("namespaces", k, current), True
        return current, False

    def _delete_namespace_contents(self, namespace: str) -> None:
        for key, bucket in list(self._data.items()):
            if key == "namespaces":
                continue
            for k in [k for k in bucket if k[0] == namespace]:
                entry = bucket.get(k)  # earlier deletions may have collected it already
                if entry is not None and not entry.obj["metadata"].get("deletionTimestamp"):
                    self._delete_entry(key, k, entry, None)

    def namespace_empty(self, namespace: str) -> bool:
        return not any(k[0] == namespace for key, bucket in self._data.items() if key != "namespaces"
                       for k in bucket)

    def _finish_namespace(self, namespace: str) -> None:
        ns = self._data.get("namespaces", {}).get(("", namespace))
        if ns is None or not ns.obj["metadata"].get("deletionTimestamp") or ns.obj["metadata"].get("finalizers"):
            return
        if self.namespace_empty(namespace):
            self._remove("namespaces", ("", namespace), ns)

    # ----- watches -------------------------------------------------------------------------

    def watch(self, rt: ResourceType, namespace: str | None, labels: tuple[Requirement, ...],
              fields: tuple[FieldRequirement, ...], rv_text: str | None) -> Watcher:
        """Register a watcher, pre-filled with the initial state or the replay after ``rv_text``."""
        watcher = Watcher(rt.key, namespace, labels, fields, self._watch_queue_size)
        if not rv_text or rv_text == "0":
            for _, entry in sorted(self._candidates(rt, namespace, labels, fields), key=lambda item: item[0]):
                if watcher.matches(entry.obj):
                    watcher.pending.append((ADDED, entry.obj, entry.raw))
        else:
            rv = _parse_rv(rv_text)
            if rv < self._log_floor:
                raise expired(f"too old resource version: {rv} ({self._log_floor})")
            replay = []
            for event in reversed(self._log):
                if event.rv <= rv:
                    break
                if event.key == rt.key:
                    replay.append(event)
            for event in reversed(replay):
                seen = watcher.event_type(event.kind, event.obj, event.old)
                if seen is not None:
                    watcher.pending.append((seen, event.obj, event.raw))
        self._watchers.setdefault(rt.key, set()).add(watcher)
        if watcher.pending:
            watcher.wakeup.set()
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.key)
        if watchers is not None:
            watchers.discard(watcher)

    def close_watchers(self, key: str | None = None) -> None:
        for wkey, watchers in self._watchers.items():
            if key is None or wkey == key:
                for watcher in watchers:
                    watcher.close()

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    def drop_resource(self, key: str) -> None:
        """Remove every object of a resource whose CRD was deleted (DELETED events, no finalizers run)."""
        for k, entry in list(self._data.get(key, {}).items()):
            self._commit(key, k, orjson.loads(entry.raw), DELETED, entry.obj)
        self._data.pop(key, None)
        self.close_watchers(key)

    def all_entries(self) -> Iterable[tuple[str, Entry]]:
        for key, bucket in self._data.items():
            for entry in bucket.values():
                yield key, entry


def _parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"invalid resource version {text!r}") from None
    if value < 0:
        raise bad_request(f"invalid resource version {text!r}")
    return value


def _discard(index: dict[Any, set[Any]], key: Any, value: Any) -> None:
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]


def stale(entry: Entry, rv_text: Any) -> bool:
    """True when a client's resourceVersion precondition does not match the stored object."""
    return bool(rv_text) and str(rv_text) != entry.obj["metadata"]["resourceVersion"]


def raise_if_stale(rt: ResourceType, entry: Entry, rv_text: Any) -> None:
    if stale(entry, rv_text):
        raise conflict(rt.plural, rt.group, entry.obj["metadata"]["name"])


