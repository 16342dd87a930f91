"""envd's plain HTTP routes: ``/health``, ``/init``, ``/envs``, ``/metrics``, ``/files``.

``/files`` moves file contents (the SDK's ``files.read``/``files.write``,
``download_url``/``upload_url``): GET streams a file, POST accepts multipart parts
named ``file`` (filename = destination path) or a raw ``application/octet-stream``
body, optionally gzip-encoded. Errors are JSON ``{"code": <status>, "message": ...}``,
which the SDK turns into ``FileNotFoundException``, ``InvalidArgumentException``
and friends.

Written directly against ASGI (no web framework): six routes do not need one,
and envd's memory in every sandbox does not have to pay for it.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any
from urllib.parse import parse_qs, quote

from agent_sandbox.common.logging import get_logger

from . import ENVD_VERSION
from .auth import AuthError, FileAccess, check_file_access, token_matches
from .metrics import HostMetrics
from .ownership import make_dirs_owned
from .paths import PathError, resolve_path
from .state import EnvdState, InitError, parse_init
from .uploads import MultipartFiles, UploadError, multipart_boundary
from .users import Account, UserError, ensure_user, lookup

log = get_logger(__name__)

MAX_INIT_BODY = 2 << 20
CHUNK = 1 << 20

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _os_error(exc: OSError, path: str) -> HttpError:
    if exc.errno == errno.ENOENT:
        return HttpError(404, f"path '{path}' does not exist")
    if exc.errno in (errno.EISDIR, errno.ENOTDIR):
        return HttpError(400, f"path '{path}' is a directory or has a non-directory parent")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return HttpError(403, f"permission denied for '{path}'")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return HttpError(507, "not enough disk space available")
    return HttpError(500, f"'{path}': {exc.strerror}")


class Request:
    """The parts of an ASGI HTTP request the routes use."""

    def __init__(self, scope: dict[str, Any], receive: Receive) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        raw_query = scope.get("query_string", b"").decode("latin-1")
        self.query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        self._receive = receive

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise HttpError(400, "client disconnected during the upload")
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return

    async def body(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, "request body too large")
            parts.append(chunk)
        return b"".join(parts)


async def _respond(send: Send, status: int, body: bytes = b"", content_type: str | None = None,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, value: Any) -> None:
    await _respond(send, status, json.dumps(value).encode(), "application/json")


def _stat_regular_file(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _os_error(exc, path) from exc
    if not stat.S_ISREG(st.st_mode):
        raise HttpError(400, f"path '{path}' is not a file")
    return st


def _open_for_write(path: str, account: Account) -> IO[bytes]:
    try:
        make_dirs_owned(os.path.dirname(path), account)
        if os.path.isdir(path):
            raise HttpError(400, f"path '{path}' is a directory")
        handle = open(path, "wb")  # noqa: SIM115 - closed by the caller
        if os.geteuid() == 0:
            os.fchown(handle.fileno(), account.uid, account.gid)
        return handle
    except OSError as exc:
        raise _os_error(exc, path) from exc


class HttpApi:
    def __init__(self, state: EnvdState) -> None:
        self._state = state
        self._metrics = HostMetrics()
        self._routes: dict[tuple[str, str], Callable[[Request, Send], Awaitable[None]]] = {
            ("GET", "/health"): self.health,
            ("POST", "/init"): self.init,
            ("GET", "/envs"): self.envs,
            ("GET", "/metrics"): self.metrics,
            ("GET", "/files"): self.read_file,
            ("POST", "/files"): self.write_files,
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        route = self._routes.get((request.method, request.path))
        if route is None:
            known = any(path == request.path for _, path in self._routes)
            status = 405 if known else 404
            await _json(send, status, {"code": status, "message": f"no route for {request.method} {request.path}"})
            return
        try:
            await route(request, send)
        except HttpError as exc:
            await _json(send, exc.status, {"code": exc.status, "message": exc.message})

    def _require_token(self, request: Request) -> None:
        if not token_matches(self._state.access_token, request.headers.get("x-access-token")):
            raise HttpError(401, "invalid or missing access token")

    # --- small routes --------------------------------------------------------------------------

    async def health(self, _request: Request, send: Send) -> None:
        # The version rides along so the operator's readiness check learns what to report as envdVersion.
        await _respond(send, 204, extra=[(b"x-envd-version", ENVD_VERSION.encode())])

    async def init(self, request: Request, send: Send) -> None:
        presented = request.headers.get("x-access-token")
        if self._state.access_token and not token_matches(self._state.access_token, presented):
            raise HttpError(401, "envd is already initialised; the current access token is required")
        raw = await request.body(MAX_INIT_BODY)
        try:
            init = parse_init(json.loads(raw) if raw.strip() else None)
        except (ValueError, InitError) as exc:
            raise HttpError(400, f"invalid init body: {exc}") from exc
        self._state.apply_init(init)
        await asyncio.to_thread(ensure_user, self._state.default_user)
        log.info("envd_initialised", env_vars=len(self._state.env_vars), default_user=self._state.default_user,
                 token_set=self._state.access_token is not None)
        await _respond(send, 204)

    async def envs(self, request: Request, send: Send) -> None:
        self._require_token(request)
        await _json(send, 200, self._state.env_vars)

    async def metrics(self, request: Request, send: Send) -> None:
        self._require_token(request)
        await _json(send, 200, self._metrics.sample())

    # --- /files --------------------------------------------------------------------------------

    def _file_account(self, request: Request, operation: str) -> Account:
        username = request.query.get("username") or ""
        try:
            check_file_access(
                self._state.access_token,
                FileAccess(
                    path=request.query.get("path") or "",
                    operation="read" if operation == "read" else "write",
                    username=username,
                    header_token=request.headers.get("x-access-token"),
                    signature=request.query.get("signature"),
                    signature_expiration=request.query.get("signature_expiration"),
                ),
                now=time.time(),
            )
            return lookup(username or self._state.default_user, default_name=self._state.default_user)
        except (AuthError, UserError) as exc:
            raise HttpError(401, str(exc)) from exc

    @staticmethod
    def _resolve(path: str, account: Account) -> str:
        try:
            return resolve_path(path, account.home)
        except PathError as exc:
            raise HttpError(400, str(exc)) from exc

    async def read_file(self, request: Request, send: Send) -> None:
        account = self._file_account(request, "read")
        path_param = request.query.get("path")
        if not path_param:
            raise HttpError(400, "query parameter 'path' is required")
        path = self._resolve(path_param, account)
        st = _stat_regular_file(path)
        try:
            handle = open(path, "rb")  # noqa: SIM115, ASYNC230 - opening is a metadata operation; reads go to a thread
        except OSError as exc:
            raise _os_error(exc, path) from exc
        with handle:
            name = quote(os.path.basename(path))
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(st.st_size).encode()),
                (b"content-disposition", f"inline; filename*=utf-8''{name}".encode()),
            ]})
            remaining = st.st_size
            while remaining > 0:
                data = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
                if not data:
                    break
                remaining -= len(data)
                await send({"type": "http.response.body", "body": data, "more_body": remaining > 0})
            if remaining:  # the file shrank while being sent; end the body honestly short
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def write_files(self, request: Request, send: Send) -> None:
        account = self._file_account(request, "write")
        path_param = request.query.get("path") or None
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            written = await self._write_multipart(request, account, content_type, path_param)
        else:
            if not path_param:
                raise HttpError(400, "query parameter 'path' is required for a raw upload")
            encoding = request.headers.get("content-encoding", "identity").lower()
            if encoding not in ("identity", "gzip"):
                raise HttpError(400, f"unsupported content-encoding '{encoding}'")
            path = self._resolve(path_param, account)
            await self._write_raw(request, _open_for_write(path, account), gzip=encoding == "gzip")
            written = [path]
        await _json(send, 200, [{"path": p, "name": os.path.basename(p), "type": "file"} for p in written])

    async def _write_multipart(self, request: Request, account: Account, content_type: str,
                               path_param: str | None) -> list[str]:
        try:
            boundary = multipart_boundary(content_type)
        except UploadError as exc:
            raise HttpError(400, str(exc)) from exc
        files = MultipartFiles(boundary, lambda target: _open_for_write(self._resolve(target, account), account),
                               path_param)
        try:
            async for chunk in request.chunks():
                files.feed(chunk)
            return files.finish()
        except UploadError as exc:
            raise HttpError(400, str(exc)) from exc
        except OSError as exc:
            raise _os_error(exc, "upload") from exc
        finally:
            files.close()

    @staticmethod
    async def _write_raw(request: Request, handle: IO[bytes], *, gzip: bool) -> None:
        decompressor: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        try:
            async for chunk in request.chunks():
                data = decompressor.decompress(chunk) if decompressor else chunk
                if data:
                    handle.write(data)
            if decompressor:
                handle.write(decompressor.flush())
        except zlib.error as exc:
            raise HttpError(400, f"invalid gzip body: {exc}") from exc
        except OSError as exc:
            raise _os_error(exc, handle.name if isinstance(handle.name, str) else "upload") from exc
        finally:
            handle.close()
