"""HTTP shell of the embedded API server: routing, verbs, watch streaming, auth and faults.

One catch-all handler (behind the HTTP front of :mod:`.httpserver`) parses the Kubernetes URL grammar
(``/api/v1/...``, ``/apis/<group>/<version>/...``, optional
``namespaces/<ns>/``, resource, name, subresource) against the live registry,
so CRDs created at run time are served without re-registering routes. Verbs map
to the store (state, versions, events) and the strategies (write rules); the
shell only decodes, encodes and streams. Every failure becomes a ``Status``
with ``Content-Type: application/json`` exactly (lightkube and kubectl rely on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import pathlib
import random
from typing import Any

import orjson
import yaml
from aiohttp import web
from pydantic import ValidationError

from agent_sandbox.common.logging import get_logger

from . import discovery, openapi, patches, podexec, strategy, tables, watchstream
from .errors import (
    StatusError,
    bad_request,
    conflict,
    internal,
    method_not_allowed,
    not_found,
    unauthorized,
    unprocessable,
    unsupported_media_type,
)
from .faults import FaultConfig, FaultInjector
from .groupcommit import CommitError
from .httpserver import HttpRequest, Reply, status_reply
from .persistence import SqlitePersistence
from .podlogs import PodLogSources, pick_container, trim
from .resources import CRD_KEY, Registry, ResourceType, served_bytes
from .selectors import label_selector_to_string, parse_field_selector, parse_label_selector
from .store import Entry, Store, raise_if_stale

#: Largest request body accepted (a big ConfigMap or CRD).
MAX_BODY_BYTES = 32 * 1024 * 1024

log = get_logger(__name__)

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/livez"})
FAULTS_PATH = "/localcluster/v1/faults"
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "agent-sandbox-system")
_TRUE = frozenset({"true", "True", "1"})
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_JSON_TYPES = frozenset({"application/json", "", "*/*"})
_STATUS_SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def json_response(body: Any, status: int = 200) -> Reply:
    return Reply(body if isinstance(body, bytes) else orjson.dumps(body), status)


def _query_int(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r} is not an integer") from None


class Request:
    """A parsed resource request."""

    __slots__ = ("name", "namespace", "rt", "subresource")

    def __init__(self, rt: ResourceType, namespace: str | None, name: str | None, subresource: str | None):
        self.rt = rt
        self.namespace = namespace
        self.name = name
        self.subresource = subresource


class ApiServer:
    """The embedded Kubernetes API server (state + HTTP handlers); see :mod:`..app` to run it."""

    def __init__(self, *, token: str, crd_dir: pathlib.Path | None = None,
                 persistence: SqlitePersistence | None = None, faults: FaultConfig | None = None,
                 event_log_size: int = 10_000, watch_queue_size: int = 20_000,
                 bookmark_interval: float = 5.0) -> None:
        self.token = token
        self.crd_dir = crd_dir
        self.persistence = persistence
        self.faults = FaultInjector(faults)
        if persistence is not None:
            persistence.fault = self.faults.commit_error
        self.registry = Registry()
        self.store = Store(event_log_size=event_log_size, watch_queue_size=watch_queue_size,
                           persist=persistence.record if persistence else None)
        self.store.on_removed.append(self._on_removed)
        self.bookmark_interval = bookmark_interval
        self.server_address = "127.0.0.1"
        self.pod_logs = PodLogSources()
        self.pod_exec = podexec.PodExecRunners()
        self._streams: set[asyncio.Task[Any]] = set()

    # ----- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Load persisted state, create the standard namespaces, load CRDs from ``crd_dir``."""
        if self.persistence is not None:
            rv, rows = await self.persistence.open()
            self.store.rv = rv
            for key, raw in rows:
                self.store.load(key, raw)
            for _, entry in list(self.store.all_entries()):
                if entry.obj.get("kind") == "CustomResourceDefinition":
                    self.registry.install_crd(entry.obj)
            self.persistence.start()
        ns_type = self._builtin("", "namespaces")
        for name in INITIAL_NAMESPACES:
            if not self.store.exists(ns_type, None, name):
                self.store.create(ns_type, strategy.prepare_create(ns_type, {"metadata": {"name": name}}, None))
        if self.crd_dir is not None:
            self.load_crd_dir(self.crd_dir)

    async def stop_streams(self) -> None:
        """End every open watch stream (first step of a shutdown)."""
        self.store.close_watchers()
        for task in list(self._streams):
            task.cancel()
        if self._streams:
            await asyncio.gather(*self._streams, return_exceptions=True)

    async def close(self) -> None:
        """Flush and close persistence (last step of a shutdown, after requests have drained)."""
        if self.persistence is not None:
            await self.persistence.close()

    def load_crd_dir(self, crd_dir: pathlib.Path) -> int:
        """Create or update every CustomResourceDefinition found in ``*.yaml``/``*.yml`` files."""
        crd_type = self._builtin("apiextensions.k8s.io", "customresourcedefinitions")
        count = 0
        files = sorted([*crd_dir.glob("*.yaml"), *crd_dir.glob("*.yml")]) if crd_dir.is_dir() else []
        for path in files:
            try:
                docs = list(yaml.safe_load_all(path.read_text()))
            except (OSError, yaml.YAMLError) as exc:
                log.warning("skipping unreadable CRD file", path=str(path), error=str(exc))
                continue
            for doc in docs:
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                try:
                    self._apply_crd(crd_type, doc)
                    count += 1
                except StatusError as exc:
                    log.warning("skipping invalid CRD", path=str(path), error=exc.message)
        log.info("loaded CRDs", directory=str(crd_dir), count=count)
        return count

    def _apply_crd(self, crd_type: ResourceType, doc: dict[str, Any]) -> None:
        name = (doc.get("metadata") or {}).get("name", "")
        existing = self.store.find(crd_type.key, None, name)
        if existing is None:
            entry = self.store.create(crd_type, strategy.prepare_create(crd_type, doc, None))
        elif existing.obj.get("spec") != doc.get("spec"):
            new = strategy.prepare_update(crd_type, existing.obj, doc, None)
            entry = self.store.replace(crd_type, existing, new)
        else:
            return
        self.registry.install_crd(entry.obj)

    def _builtin(self, group: str, plural: str) -> ResourceType:
        rt = self.registry.lookup(group, "v1", plural)
        assert rt is not None
        return rt

    def _on_removed(self, key: str, obj: dict[str, Any]) -> None:
        if key == CRD_KEY:
            name = obj["metadata"]["name"]
            spec = obj.get("spec") or {}
            self.registry.remove_crd(name)
            names = spec.get("names") or {}
            self.store.drop_resource(f"{names.get('plural')}.{spec.get('group')}")

    # ----- HTTP entry ----------------------------------------------------------------------

    @staticmethod
    def streams(request: HttpRequest) -> bool:
        """Whether ``request`` turns into a stream (a watch, an exec session, any upgrade): the HTTP front
        (:mod:`.httpserver`) hands those to aiohttp, and every other request gets a :class:`Reply`."""
        return _is_watch(request) or request.path.endswith("/exec") or "Upgrade" in request.headers

    def _authorized(self, request: HttpRequest) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self.token.encode())

    async def handle(self, request: HttpRequest) -> Reply | web.StreamResponse:
        path = request.path
        if path in HEALTH_PATHS or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return Reply(b"ok", content_type="text/plain; charset=utf-8")
        try:
            if not self._authorized(request):
                raise unauthorized()
            if path == FAULTS_PATH:
                return await self._faults_endpoint(request)
            return await self._dispatch(request, path)
        except StatusError as err:
            return status_reply(err)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug must still answer as a Status, never a stack trace
            log.exception("unhandled error", method=request.method, path=path)
            return status_reply(internal(f"internal error: {type(exc).__name__}"))

    async def _faults_endpoint(self, request: HttpRequest) -> Reply:
        if request.method == "GET":
            return json_response(self.faults.config.model_dump())
        if request.method != "PUT":
            raise method_not_allowed("use GET or PUT")
        try:
            config = FaultConfig.model_validate_json(await request.read())
        except ValidationError as exc:
            raise bad_request(f"invalid fault configuration: {exc.errors(include_url=False)}") from None
        self.faults.config = config
        log.info("fault injection updated", **config.model_dump())
        return json_response(config.model_dump())

    async def _dispatch(self, request: HttpRequest, path: str) -> Reply | web.StreamResponse:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return json_response({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/version"]})
        if parts[0] == "version" and len(parts) == 1:
            return json_response(discovery.SERVER_VERSION)
        if parts[0] == "openapi":
            return self._openapi(parts[1:])
        if parts[0] == "api":
            if len(parts) == 1:
                return json_response(discovery.core_versions(self.server_address))
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                return json_response(discovery.group_list(self.registry))
            if len(parts) == 2:
                doc = discovery.group(self.registry, parts[1])
                if doc is None:
                    raise _no_route()
                return json_response(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _no_route()
        if not rest:
            doc = discovery.resource_list(self.registry, group, version)
            if doc is None:
                raise _no_route()
            return json_response(doc)
        req = self._parse(group, version, rest)
        method = request.method
        verb_class = "watch" if _is_watch(request) else ("read" if method == "GET" else "write")
        await self._inject(verb_class, req)
        if req.subresource == "exec" and method in ("GET", "POST"):
            return await podexec.serve(_stream_request(request),
                                       self.store.get(req.rt, req.namespace, req.name or "").obj, self.pod_exec)
        if method == "GET":
            if req.name is None:
                if verb_class == "watch":
                    return await self._watch(_stream_request(request), req)
                return self._list(request, req)
            if req.subresource == "log":
                return await self._pod_log(request, req)
            return self._get(request, req)
        response = await self._dispatch_write(request, req, path)
        await self._durable()
        return response

    async def _durable(self) -> None:
        """Hold a write's answer until it is committed to disk (no-op without persistence).

        Handlers commit to the store without awaiting after the write, so ``store.rv`` here is the
        version of this request's last write (a delete's garbage collection included).
        """
        if self.persistence is None:
            return
        try:
            await self.persistence.wait_durable(self.store.rv)
        except CommitError as exc:
            raise internal(f"the write could not be saved to disk ({exc}); it may or may not take effect: "
                           "read the object again before retrying") from None

    async def _dispatch_write(self, request: HttpRequest, req: Request, path: str) -> Reply:
        method = request.method
        if method == "POST":
            if req.name is None:
                return await self._create(request, req)
            if req.subresource == "binding" and req.rt.key == "pods":
                return await self._bind(request, req)
            raise method_not_allowed(f"POST is not supported on {path}")
        if req.name is None:
            if method == "DELETE":
                return await self._delete_collection(request, req)
            raise method_not_allowed(f"{method} is not supported on a collection")
        if method == "PUT":
            return await self._update(request, req)
        if method == "PATCH":
            return await self._patch(request, req)
        if method == "DELETE" and req.subresource is None:
            return await self._delete(request, req)
        raise method_not_allowed(f"{method} is not supported on {path}")

    def _openapi(self, parts: list[str]) -> Reply:
        if parts == ["v2"]:
            return Reply(b"", content_type=openapi.V2_PROTOBUF)
        if parts == ["v3"]:
            return json_response(openapi.root_document(self.registry))
        doc = None
        if len(parts) == 3 and parts[:2] == ["v3", "api"]:
            doc = openapi.group_version_document(self.registry, "", parts[2])
        elif len(parts) == 4 and parts[:2] == ["v3", "apis"]:
            doc = openapi.group_version_document(self.registry, parts[2], parts[3])
        if doc is None:
            raise _no_route()
        return json_response(doc)

    def _parse(self, group: str, version: str, rest: list[str]) -> Request:
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] != "status":
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _no_route()
        rt = self.registry.lookup(group, version, rest[0])
        if rt is None:
            raise _no_route()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if namespace is not None and not rt.namespaced:
            raise _no_route()
        if rt.namespaced and name is not None and namespace is None:
            raise _no_route()
        if sub is not None and not (
            (sub == "status" and rt.status_subresource) or (sub == "scale" and rt.scale is not None)
            or (sub in ("binding", "log", "exec") and rt.key == "pods")
        ):
            raise _no_route()
        return Request(rt, namespace, name, sub)

    async def _inject(self, verb_class: str, req: Request) -> None:
        config = self.faults.config
        if not config.active:
            return
        delay = config.latency_seconds(verb_class)  # type: ignore[arg-type]
        if delay:
            await asyncio.sleep(delay)
        if self.faults.error():
            raise StatusError(config.error_status, "InternalError" if config.error_status == 500
                              else "ServiceUnavailable", "injected fault: server error")
        if verb_class == "write" and self.faults.conflict():
            raise conflict(req.rt.plural, req.rt.group, req.name or "", "injected fault: write conflict")

    # ----- encoding helpers ----------------------------------------------------------------

    @staticmethod
    def _raw(rt: ResourceType, entry: Entry) -> bytes:
        return served_bytes(rt, entry.obj, entry.raw)

    def _object_response(self, request: HttpRequest, rt: ResourceType, entry: Entry,
                         status: int = 200) -> Reply:
        if tables.wants_table(request.headers.get("Accept", "")):
            include = request.query.get("includeObject", "Metadata")
            return json_response(tables.table(rt, [entry.obj], include=include), status)
        return json_response(self._raw(rt, entry), status)

    async def _body(self, request: HttpRequest) -> Any:
        ctype = request.content_type
        if ctype not in _JSON_TYPES and ctype != "application/yaml":
            raise unsupported_media_type(ctype)
        data = await request.read()
        if not data:
            raise bad_request("the request body is empty")
        try:
            body = yaml.safe_load(data) if ctype == "application/yaml" else orjson.loads(data)
        except (orjson.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise bad_request(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        return body

    @staticmethod
    def _dry_run(request: HttpRequest) -> bool:
        return "All" in request.query.getall("dryRun", [])

    # ----- reads ---------------------------------------------------------------------------

    def _selectors(self, request: HttpRequest, rt: ResourceType) -> tuple[Any, Any]:
        try:
            labels = parse_label_selector(request.query.get("labelSelector"))
            fields = parse_field_selector(request.query.get("fieldSelector"), rt.field_labels, rt.kind)
        except ValueError as exc:
            raise bad_request(f"unable to parse selector: {exc}") from None
        return labels, fields

    def _get(self, request: HttpRequest, req: Request) -> Reply:
        entry = self.store.get(req.rt, req.namespace, req.name or "")
        if req.subresource == "scale":
            return json_response(self._scale_object(req.rt, entry.obj))
        return self._object_response(request, req.rt, entry)

    async def _pod_log(self, request: HttpRequest, req: Request) -> Reply:
        pod = self.store.get(req.rt, req.namespace, req.name or "").obj
        tail_lines = _query_int(request.query, "tailLines")
        limit_bytes = _query_int(request.query, "limitBytes")
        if tail_lines is not None and tail_lines < 0:
            raise bad_request("tailLines must not be negative")
        if limit_bytes is not None and limit_bytes < 1:
            raise bad_request("limitBytes must be greater than zero")
        try:
            container = pick_container(pod, request.query.get("container"))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        node = (pod.get("spec") or {}).get("nodeName") or ""
        data = await self.pod_logs.read(node, pod["metadata"].get("uid", ""), container)
        return Reply(trim(data, tail_lines, limit_bytes), content_type="text/plain")

    def _list(self, request: HttpRequest, req: Request) -> Reply:
        rt = req.rt
        labels, fields = self._selectors(request, rt)
        limit = _query_int(request.query, "limit") or 0
        if limit < 0:
            raise bad_request("limit must not be negative")
        self.store.check_list_rv(request.query.get("resourceVersion"), request.query.get("resourceVersionMatch"))
        result = self.store.list(rt, req.namespace, labels, fields, limit, request.query.get("continue") or None)
        list_meta: dict[str, Any] = {"resourceVersion": str(result.rv)}
        if result.continue_token:
            list_meta["continue"] = result.continue_token
            list_meta["remainingItemCount"] = result.remaining
        if tables.wants_table(request.headers.get("Accept", "")):
            include = request.query.get("includeObject", "Metadata")
            return json_response(tables.table(rt, [e.obj for e in result.items], include=include,
                                              list_meta=list_meta))
        head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta})
        items = b",".join(self._raw(rt, e) for e in result.items)
        return json_response(head[:-1] + b',"items":[' + items + b"]}")

    # ----- watch ---------------------------------------------------------------------------

    async def _watch(self, request: web.BaseRequest, req: Request) -> web.StreamResponse:
        rt = req.rt
        labels, fields = self._selectors(request, rt)
        query = request.query
        timeout = _query_int(query, "timeoutSeconds")
        bookmarks = query.get("allowWatchBookmarks") in _TRUE
        initial_events = query.get("sendInitialEvents") in _TRUE
        rv = None if initial_events else query.get("resourceVersion")
        table = tables.wants_table(request.headers.get("Accept", ""))
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            watcher = self.store.watch(rt, req.namespace, labels, fields, rv)
        except StatusError as err:
            if err.code != 410:
                raise
            await response.prepare(request)
            await response.write(orjson.dumps({"type": "ERROR", "object": err.body()}) + b"\n")
            return response
        opts = watchstream.StreamOptions(timeout_s=timeout, bookmarks=bookmarks, table=table,
                                         initial_end=len(watcher.pending) if initial_events else -1,
                                         bookmark_interval=self.bookmark_interval)
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            await response.prepare(request)
            await watchstream.stream(request, response, rt, watcher, self._watch_rv, self.faults, opts,
                                     self.persistence.wait_committed if self.persistence else None)
        except (ConnectionResetError, asyncio.CancelledError, CommitError):
            pass
        finally:
            self.store.unwatch(watcher)
            if task is not None:
                self._streams.discard(task)
        return response

    def _watch_rv(self) -> int:
        """The version bookmarks carry: with persistence, the committed one (watchers see only durable state)."""
        return self.persistence.committed_rv if self.persistence is not None else self.store.rv

    # ----- writes --------------------------------------------------------------------------

    def _resolve_name(self, rt: ResourceType, namespace: str | None, meta: dict[str, Any]) -> None:
        if meta.get("name"):
            return
        prefix = meta.get("generateName")
        if not prefix or not isinstance(prefix, str):
            return  # prepare_create reports the missing name as 422
        for _ in range(16):
            candidate = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            if not self.store.exists(rt, namespace, candidate):
                meta["name"] = candidate
                return
        raise StatusError(500, "ServerTimeout", f"could not generate a unique name for {prefix!r}")

    async def _create(self, request: HttpRequest, req: Request) -> Reply:
        rt = req.rt
        body = await self._body(request)
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced and req.namespace is None:
            raise _no_route()
        self._resolve_name(rt, req.namespace, meta)
        obj = strategy.prepare_create(rt, body, req.namespace)
        dry_run = self._dry_run(request)
        entry = self.store.create(rt, obj, dry_run=dry_run)
        if not dry_run:
            self._after_write(rt, entry)
        return self._object_response(request, rt, entry, 201)

    def _after_write(self, rt: ResourceType, entry: Entry) -> None:
        if rt.key == CRD_KEY:
            self.registry.install_crd(entry.obj)

    async def _update(self, request: HttpRequest, req: Request) -> Reply:
        rt = req.rt
        body = await self._body(request)
        entry = self.store.get(rt, req.namespace, req.name or "")
        if req.subresource == "scale":
            return self._write_scale(request, rt, entry, body)
        raise_if_stale(rt, entry, (body.get("metadata") or {}).get("resourceVersion")
                       if isinstance(body.get("metadata"), dict) else None)
        new = strategy.prepare_update(rt, entry.obj, body, req.subresource)
        dry_run = self._dry_run(request)
        updated = self.store.replace(rt, entry, new, dry_run=dry_run)
        if not dry_run:
            self._after_write(rt, updated)
        return self._object_response(request, rt, updated)

    async def _patch(self, request: HttpRequest, req: Request) -> Reply:
        rt = req.rt
        ctype = request.content_type
        if ctype not in patches.PATCH_TYPES:
            raise unsupported_media_type(ctype)
        if ctype == patches.APPLY and not request.query.get("fieldManager"):
            raise bad_request("fieldManager: Required value: is required for apply patch")
        data = await request.read()
        try:
            body = patches.parse_body(ctype, data)
            entry = self.store.find(rt.key, req.namespace, req.name or "")
            if entry is None:
                if ctype == patches.APPLY and req.subresource is None:
                    return self._apply_create(request, req, body)
                raise not_found(rt.plural, rt.group, req.name or "")
            if req.subresource == "scale":
                scale = patches.apply_patch(ctype, self._scale_object(rt, entry.obj), body)
                return self._write_scale(request, rt, entry, scale)
            # Patches share unchanged subtrees with the stored object instead of copying it; a custom
            # resource is pruned and defaulted in place afterwards (schema.prune_and_default), so it
            # gets a copy of its own.
            patched = patches.apply_patch(ctype, orjson.loads(entry.raw) if rt.custom else entry.obj, body)
        except patches.PatchError as exc:
            if exc.status == 400:
                raise bad_request(str(exc)) from None
            raise unprocessable(str(exc)) from None
        if not isinstance(patched.get("metadata"), dict):
            raise unprocessable("metadata must be an object")
        raise_if_stale(rt, entry, patched["metadata"].get("resourceVersion"))
        new = strategy.prepare_update(rt, entry.obj, patched, req.subresource)
        dry_run = self._dry_run(request)
        updated = self.store.replace(rt, entry, new, dry_run=dry_run)
        if not dry_run:
            self._after_write(rt, updated)
        return self._object_response(request, rt, updated)

    def _apply_create(self, request: HttpRequest, req: Request, body: Any) -> Reply:
        if not isinstance(body, dict):
            raise bad_request("apply patch body must be an object")
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if meta.get("name") not in (None, req.name):
            raise bad_request("the name of the object does not match the name on the URL")
        meta["name"] = req.name
        obj = strategy.prepare_create(req.rt, body, req.namespace)
        entry = self.store.create(req.rt, obj, dry_run=self._dry_run(request))
        if not self._dry_run(request):
            self._after_write(req.rt, entry)
        return self._object_response(request, req.rt, entry, 201)

    # ----- scale ---------------------------------------------------------------------------

    def _scale_object(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        assert rt.scale is not None
        meta = obj["metadata"]
        status: dict[str, Any] = {"replicas": strategy.get_path(obj, rt.scale.status_replicas_path) or 0}
        if rt.scale.label_selector_path:
            selector = strategy.get_path(obj, rt.scale.label_selector_path)
            if isinstance(selector, dict):
                selector = label_selector_to_string(selector)
            if selector:
                status["selector"] = selector
        scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                      if k in meta}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
                "spec": {"replicas": strategy.get_path(obj, rt.scale.spec_replicas_path) or 0},
                "status": status}

    def _write_scale(self, request: HttpRequest, rt: ResourceType, entry: Entry, scale: Any) -> Reply:
        assert rt.scale is not None
        if not isinstance(scale, dict):
            raise bad_request("the scale body must be an object")
        raise_if_stale(rt, entry, (scale.get("metadata") or {}).get("resourceVersion"))
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise unprocessable(f"Scale.autoscaling \"{entry.obj['metadata']['name']}\" is invalid: "
                                f"spec.replicas: Invalid value: {replicas!r}: must be greater than or equal to 0")
        new = orjson.loads(entry.raw)
        strategy.set_path(new, rt.scale.spec_replicas_path, replicas)
        new = strategy.prepare_update(rt, entry.obj, new, None)
        updated = self.store.replace(rt, entry, new, dry_run=self._dry_run(request))
        return json_response(self._scale_object(rt, updated.obj))

    # ----- pods: binding (node agents bind pending Pods, there is no separate scheduler) ----

    async def _bind(self, request: HttpRequest, req: Request) -> Reply:
        body = await self._body(request)
        target = (body.get("target") or {}).get("name")
        if not target:
            raise unprocessable("target.name: Required value")
        entry = self.store.get(req.rt, req.namespace, req.name or "")
        self._bind_pod(req.rt, entry, target)
        return json_response(_STATUS_SUCCESS, 201)

    def _bind_pod(self, rt: ResourceType, entry: Entry, node: str) -> Entry:
        current = (entry.obj.get("spec") or {}).get("nodeName")
        if current:
            raise conflict(rt.plural, rt.group, entry.obj["metadata"]["name"],
                           f"pod {entry.obj['metadata']['name']} is already assigned to node \"{current}\"")
        new = orjson.loads(entry.raw)
        new["spec"]["nodeName"] = node
        status = new.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": strategy.now()})
        status["conditions"] = conditions
        return self.store.replace(rt, entry, new)

    # ----- deletes -------------------------------------------------------------------------

    async def _delete_options(self, request: HttpRequest) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.can_read_body:
            data = await request.read()
            if data.strip():
                try:
                    parsed = orjson.loads(data)
                except orjson.JSONDecodeError as exc:
                    raise bad_request(f"the DeleteOptions body is not valid JSON: {exc}") from None
                if not isinstance(parsed, dict):
                    raise bad_request("DeleteOptions must be an object")
                options = parsed
        grace = _query_int(request.query, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if request.query.get("propagationPolicy"):
            options["propagationPolicy"] = request.query["propagationPolicy"]
        if options.get("orphanDependents") is True:
            options.setdefault("propagationPolicy", "Orphan")
        if options.get("propagationPolicy") not in (None, "Orphan", "Background", "Foreground"):
            raise bad_request(f"invalid propagationPolicy {options['propagationPolicy']!r}")
        if self._dry_run(request):
            options["dryRun"] = ["All"]
        return options

    def _delete_one(self, rt: ResourceType, namespace: str | None, name: str,
                    options: dict[str, Any]) -> tuple[Entry, bool]:
        grace = options.get("gracePeriodSeconds")
        if grace is not None and not isinstance(grace, int):
            raise bad_request("gracePeriodSeconds must be an integer")
        return self.store.delete(rt, namespace, name, grace=grace, propagation=options.get("propagationPolicy"),
                                 preconditions=options.get("preconditions"),
                                 dry_run="All" in (options.get("dryRun") or []))

    async def _delete(self, request: HttpRequest, req: Request) -> Reply:
        rt = req.rt
        options = await self._delete_options(request)
        entry, removed = self._delete_one(rt, req.namespace, req.name or "", options)
        if removed and not rt.custom and rt.key != "pods":
            meta = entry.obj["metadata"]
            return json_response({**_STATUS_SUCCESS, "details": {"name": meta["name"], "group": rt.group,
                                                                 "kind": rt.plural, "uid": meta.get("uid")}})
        return json_response(self._raw(rt, entry))

    async def _delete_collection(self, request: HttpRequest, req: Request) -> Reply:
        rt = req.rt
        labels, fields = self._selectors(request, rt)
        options = await self._delete_options(request)
        result = self.store.list(rt, req.namespace, labels, fields)
        deleted = []
        for entry in result.items:
            meta = entry.obj["metadata"]
            with contextlib.suppress(StatusError):
                latest, _ = self._delete_one(rt, meta.get("namespace"), meta["name"], options)
                deleted.append(self._raw(rt, latest))
        head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version,
                             "metadata": {"resourceVersion": str(self.store.rv)}})
        return json_response(head[:-1] + b',"items":[' + b",".join(deleted) + b"]}")


def _is_watch(request: HttpRequest) -> bool:
    return request.method == "GET" and request.query.get("watch") in _TRUE


def _stream_request(request: HttpRequest) -> web.BaseRequest:
    """The aiohttp request behind a watch or exec: :meth:`ApiServer.streams` sends those to aiohttp."""
    assert isinstance(request, web.BaseRequest), "a stream request reached the lean path"
    return request


def _no_route() -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource",
                       {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


__all__ = ["MAX_BODY_BYTES", "ApiServer", "json_response"]
