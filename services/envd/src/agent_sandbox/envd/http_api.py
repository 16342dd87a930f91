"""envd's plain HTTP routes: ``/health``, ``/init``, ``/envs``, ``/metrics``, ``/files``.

``/files`` moves file contents (the SDK's ``files.read``/``files.write``,
``download_url``/``upload_url``): GET streams a file, POST accepts multipart
parts named ``file`` (filename = destination path) or a raw
``application/octet-stream`` body, optionally gzip-encoded. Errors are JSON
``{"code": <status>, "message": ...}``, which the SDK turns into
``FileNotFoundException``, ``InvalidArgumentException`` and friends.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import stat
import time
import zlib
from typing import IO, Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from agent_sandbox.common.logging import get_logger

from .auth import AuthError, FileAccess, check_file_access, token_matches
from .metrics import HostMetrics
from .ownership import make_dirs_owned
from .paths import PathError, resolve_path
from .state import EnvdState, InitError, parse_init
from .users import Account, UserError, ensure_user, lookup

log = get_logger(__name__)

MAX_INIT_BODY = 2 << 20
WRITE_CHUNK = 1 << 20


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status_code=status)


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


def _stat_regular_file(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _os_error(exc, path) from exc
    if not stat.S_ISREG(st.st_mode):
        raise HttpError(400, f"path '{path}' is not a file")
    return st


class HttpApi:
    def __init__(self, state: EnvdState) -> None:
        self._state = state
        self._metrics = HostMetrics()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/init", self.init, methods=["POST"]),
                Route("/envs", self.envs, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/files", self.read_file, methods=["GET"]),
                Route("/files", self.write_files, methods=["POST"]),
            ],
            exception_handlers={HttpError: self._http_error, 404: self._not_found, 405: self._not_allowed},
        )

    async def _http_error(self, _request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpError)
        return error_response(exc.status, exc.message)

    async def _not_found(self, request: Request, _exc: Exception) -> Response:
        return error_response(404, f"no route for {request.url.path}")

    async def _not_allowed(self, request: Request, _exc: Exception) -> Response:
        return error_response(405, f"method {request.method} not allowed on {request.url.path}")

    def _require_token(self, request: Request) -> None:
        if not token_matches(self._state.access_token, request.headers.get("x-access-token")):
            raise HttpError(401, "invalid or missing access token")

    # --- small routes --------------------------------------------------------------------------

    async def health(self, _request: Request) -> Response:
        return Response(status_code=204)

    async def init(self, request: Request) -> Response:
        presented = request.headers.get("x-access-token")
        if self._state.access_token and not token_matches(self._state.access_token, presented):
            raise HttpError(401, "envd is already initialised; the current access token is required")
        raw = await request.body()
        if len(raw) > MAX_INIT_BODY:
            raise HttpError(413, "init body too large")
        try:
            init = parse_init(json.loads(raw) if raw.strip() else None)
        except (ValueError, InitError) as exc:
            raise HttpError(400, f"invalid init body: {exc}") from exc
        self._state.apply_init(init)
        await asyncio.to_thread(ensure_user, self._state.default_user)
        log.info("envd_initialised", env_vars=len(self._state.env_vars), default_user=self._state.default_user,
                 token_set=self._state.access_token is not None)
        return Response(status_code=204)

    async def envs(self, request: Request) -> Response:
        self._require_token(request)
        return JSONResponse(self._state.env_vars)

    async def metrics(self, request: Request) -> Response:
        self._require_token(request)
        return JSONResponse(self._metrics.sample())

    # --- /files --------------------------------------------------------------------------------

    def _file_target(self, request: Request, operation: str, path_param: str | None) -> tuple[Account, str]:
        username = request.query_params.get("username") or ""
        try:
            check_file_access(
                self._state.access_token,
                FileAccess(
                    path=path_param or "",
                    operation="read" if operation == "read" else "write",
                    username=username,
                    header_token=request.headers.get("x-access-token"),
                    signature=request.query_params.get("signature"),
                    signature_expiration=request.query_params.get("signature_expiration"),
                ),
                now=time.time(),
            )
            account = lookup(username or self._state.default_user, default_name=self._state.default_user)
        except AuthError as exc:
            raise HttpError(401, str(exc)) from exc
        except UserError as exc:
            raise HttpError(401, str(exc)) from exc
        return account, path_param or ""

    def _resolve(self, path: str, account: Account) -> str:
        try:
            return resolve_path(path, account.home)
        except PathError as exc:
            raise HttpError(400, str(exc)) from exc

    async def read_file(self, request: Request) -> Response:
        path_param = request.query_params.get("path")
        account, _ = self._file_target(request, "read", path_param)
        if not path_param:
            raise HttpError(400, "query parameter 'path' is required")
        path = self._resolve(path_param, account)
        st = _stat_regular_file(path)
        return FileResponse(path, stat_result=st, media_type="application/octet-stream",
                            filename=os.path.basename(path), content_disposition_type="inline")

    async def write_files(self, request: Request) -> Response:
        path_param = request.query_params.get("path")
        account, _ = self._file_target(request, "write", path_param)
        content_type = request.headers.get("content-type", "")
        written: list[str] = []
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=1000, max_fields=1000)
            try:
                uploads = [v for k, v in form.multi_items() if k == "file" and isinstance(v, UploadFile)]
                if not uploads:
                    raise HttpError(400, "multipart body has no part named 'file'")
                if path_param and len(uploads) > 1:
                    raise HttpError(400, "query parameter 'path' is only allowed with a single file")
                for upload in uploads:
                    target = path_param or upload.filename
                    if not target:
                        raise HttpError(400, "each file part needs a filename (the destination path)")
                    path = self._resolve(target, account)
                    await asyncio.to_thread(self._store, path, account, upload.file)
                    written.append(path)
            finally:
                await form.close()
        else:
            if not path_param:
                raise HttpError(400, "query parameter 'path' is required for a raw upload")
            path = self._resolve(path_param, account)
            encoding = request.headers.get("content-encoding", "identity").lower()
            if encoding not in ("identity", "gzip"):
                raise HttpError(400, f"unsupported content-encoding '{encoding}'")
            await self._store_stream(path, account, request, gzip=encoding == "gzip")
            written.append(path)
        return JSONResponse([{"path": p, "name": os.path.basename(p), "type": "file"} for p in written])

    @staticmethod
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

    def _store(self, path: str, account: Account, source: IO[bytes]) -> None:
        with self._open_for_write(path, account) as handle:
            try:
                shutil.copyfileobj(source, handle, WRITE_CHUNK)
            except OSError as exc:
                raise _os_error(exc, path) from exc

    async def _store_stream(self, path: str, account: Account, request: Request, *, gzip: bool) -> None:
        handle = self._open_for_write(path, account)
        decompressor: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        try:
            async for chunk in request.stream():
                data = decompressor.decompress(chunk) if decompressor else chunk
                if data:
                    handle.write(data)
            if decompressor:
                handle.write(decompressor.flush())
        except zlib.error as exc:
            raise HttpError(400, f"invalid gzip body: {exc}") from exc
        except OSError as exc:
            raise _os_error(exc, path) from exc
        finally:
            handle.close()
