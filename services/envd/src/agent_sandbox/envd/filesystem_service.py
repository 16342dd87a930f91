"""The ``filesystem.Filesystem`` Connect service.

Paths resolve against the caller's home; created directories belong to the
caller. Error codes are the ones the SDK branches on: ``not_found`` (``exists``
→ False, ``FileNotFoundException``), ``already_exists`` (``make_dir`` → False),
``invalid_argument``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
from collections.abc import AsyncIterator

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from protobuf import Oneof
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from ._gen.filesystem import filesystem_connect
from ._gen.filesystem import filesystem_pb as pb
from .caller import caller_account, keepalive_interval
from .fsinfo import KIND_DIR, KIND_FILE, KIND_SYMLINK, Entry, describe, walk
from .ownership import make_dirs_owned
from .paths import resolve_path
from .rpc_errors import to_connect_error
from .state import EnvdState
from .users import Account
from .watchers import CHMOD, CREATE, REMOVE, RENAME, WRITE, FsEvent, WatchError, WatchRegistry

_FILE_TYPES = {KIND_FILE: pb.FileType.FILE, KIND_DIR: pb.FileType.DIRECTORY, KIND_SYMLINK: pb.FileType.SYMLINK}
_EVENT_TYPES = {
    CREATE: pb.EventType.CREATE,
    WRITE: pb.EventType.WRITE,
    REMOVE: pb.EventType.REMOVE,
    RENAME: pb.EventType.RENAME,
    CHMOD: pb.EventType.CHMOD,
}


def entry_info(entry: Entry) -> pb.EntryInfo:
    info = pb.EntryInfo(
        name=entry.name,
        type=_FILE_TYPES.get(entry.kind, pb.FileType.UNSPECIFIED),
        path=entry.path,
        size=entry.size,
        mode=entry.mode,
        permissions=entry.permissions,
        owner=entry.owner,
        group=entry.group,
        modified_time=Timestamp(seconds=entry.mtime_ns // 1_000_000_000, nanos=entry.mtime_ns % 1_000_000_000),
        is_symlink=entry.symlink_target is not None,
    )
    if entry.symlink_target is not None:
        info.symlink_target = entry.symlink_target
    return info


def _os_error(exc: OSError, path: str) -> ConnectError:
    if exc.errno == errno.ENOENT:
        return ConnectError(Code.NOT_FOUND, f"path '{path}' does not exist")
    if exc.errno == errno.EEXIST:
        return ConnectError(Code.ALREADY_EXISTS, f"path '{path}' already exists")
    if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ENOTEMPTY, errno.EXDEV):
        return ConnectError(Code.INVALID_ARGUMENT, f"'{path}': {exc.strerror}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ConnectError(Code.PERMISSION_DENIED, f"'{path}': {exc.strerror}")
    if exc.errno == errno.ENOSPC:
        return ConnectError(Code.RESOURCE_EXHAUSTED, f"'{path}': no space left on device")
    return ConnectError(Code.INTERNAL, f"'{path}': {exc.strerror}")


def _describe(path: str) -> pb.EntryInfo:
    try:
        return entry_info(describe(path))
    except OSError as exc:
        raise _os_error(exc, path) from exc


def _make_dir(path: str, account: Account) -> pb.EntryInfo:
    if os.path.isdir(path):
        raise ConnectError(Code.ALREADY_EXISTS, f"directory '{path}' already exists")
    if os.path.lexists(path):
        raise ConnectError(Code.INVALID_ARGUMENT, f"path '{path}' already exists and is not a directory")
    try:
        make_dirs_owned(path, account)
    except OSError as exc:
        raise _os_error(exc, path) from exc
    return _describe(path)


def _move(source: str, destination: str, account: Account) -> pb.EntryInfo:
    if not os.path.lexists(source):
        raise ConnectError(Code.NOT_FOUND, f"path '{source}' does not exist")
    try:
        make_dirs_owned(os.path.dirname(destination), account)
        os.rename(source, destination)
    except OSError as exc:
        raise _os_error(exc, destination) from exc
    return _describe(destination)


def _list_dir(path: str, depth: int) -> list[pb.EntryInfo]:
    real = os.path.realpath(path)
    if not os.path.exists(real):
        raise ConnectError(Code.NOT_FOUND, f"path '{path}' does not exist")
    if not os.path.isdir(real):
        raise ConnectError(Code.INVALID_ARGUMENT, f"path '{path}' is not a directory")
    return [entry_info(e) for e in walk(path, depth)]


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except OSError as exc:
        raise _os_error(exc, path) from exc


def _check_watch_root(root: str) -> str:
    if not os.path.exists(root):
        raise ConnectError(Code.NOT_FOUND, f"path '{root}' does not exist")
    if not os.path.isdir(root):
        raise ConnectError(Code.INVALID_ARGUMENT, f"path '{root}' is not a directory")
    return root


def _fs_event(event: FsEvent, include_entry: bool) -> pb.FilesystemEvent:
    message = pb.FilesystemEvent(name=event.name, type=_EVENT_TYPES[event.kind])
    if include_entry and event.kind not in (REMOVE, RENAME):
        with contextlib.suppress(OSError):
            message.entry = entry_info(describe(event.path))
    return message


class FilesystemService(filesystem_connect.Filesystem):
    """Thin async shell: resolve the caller and path, run the operation (in a thread when it may be slow)."""

    def __init__(self, state: EnvdState, watches: WatchRegistry) -> None:
        self._state = state
        self._watches = watches

    def _resolve(self, path: str, ctx: RequestContext) -> tuple[str, Account]:
        try:
            account = caller_account(ctx, self._state)
            return resolve_path(path, account.home), account
        except Exception as exc:
            raise to_connect_error(exc) from exc

    async def stat(self, request: pb.StatRequest, ctx: RequestContext) -> pb.StatResponse:
        path, _ = self._resolve(request.path, ctx)
        return pb.StatResponse(entry=_describe(path))

    async def make_dir(self, request: pb.MakeDirRequest, ctx: RequestContext) -> pb.MakeDirResponse:
        path, account = self._resolve(request.path, ctx)
        return pb.MakeDirResponse(entry=_make_dir(path, account))

    async def move(self, request: pb.MoveRequest, ctx: RequestContext) -> pb.MoveResponse:
        source, account = self._resolve(request.source, ctx)
        destination, _ = self._resolve(request.destination, ctx)
        return pb.MoveResponse(entry=_move(source, destination, account))

    async def list_dir(self, request: pb.ListDirRequest, ctx: RequestContext) -> pb.ListDirResponse:
        path, _ = self._resolve(request.path, ctx)
        entries = await asyncio.to_thread(_list_dir, path, request.depth or 1)
        return pb.ListDirResponse(entries=entries)

    async def remove(self, request: pb.RemoveRequest, ctx: RequestContext) -> pb.RemoveResponse:
        path, _ = self._resolve(request.path, ctx)
        await asyncio.to_thread(_remove, path)
        return pb.RemoveResponse()

    # --- watches -------------------------------------------------------------------------------

    def _watch_root(self, path: str, ctx: RequestContext) -> str:
        root, _ = self._resolve(path, ctx)
        return _check_watch_root(root)

    async def watch_dir(self, request: pb.WatchDirRequest, ctx: RequestContext) -> AsyncIterator[pb.WatchDirResponse]:
        root = self._watch_root(request.path, ctx)
        interval = keepalive_interval(ctx)
        try:
            watch = self._watches.open_stream(root, request.recursive)
        except WatchError as exc:
            raise to_connect_error(exc) from exc
        try:
            yield pb.WatchDirResponse(event=Oneof("start", pb.WatchDirResponse.StartEvent()))
            while True:
                try:
                    events = await watch.wait(interval)
                except WatchError as exc:
                    raise to_connect_error(exc) from exc
                if not events:
                    yield pb.WatchDirResponse(event=Oneof("keepalive", pb.WatchDirResponse.KeepAlive()))
                for event in events:
                    yield pb.WatchDirResponse(event=Oneof("filesystem", _fs_event(event, request.include_entry)))
        finally:
            await self._watches.close_stream(watch)

    async def create_watcher(
        self, request: pb.CreateWatcherRequest, ctx: RequestContext
    ) -> pb.CreateWatcherResponse:
        root = self._watch_root(request.path, ctx)
        try:
            watch_id = await self._watches.create(root, request.recursive, request.include_entry)
        except WatchError as exc:
            raise to_connect_error(exc) from exc
        return pb.CreateWatcherResponse(watcher_id=watch_id)

    async def get_watcher_events(
        self, request: pb.GetWatcherEventsRequest, ctx: RequestContext
    ) -> pb.GetWatcherEventsResponse:
        try:
            watch = self._watches.get(request.watcher_id)
        except WatchError as exc:
            raise to_connect_error(exc) from exc
        try:
            events = watch.drain()
        except WatchError as exc:
            raise to_connect_error(exc) from exc
        return pb.GetWatcherEventsResponse(events=[_fs_event(e, watch.include_entry) for e in events])

    async def remove_watcher(
        self, request: pb.RemoveWatcherRequest, ctx: RequestContext
    ) -> pb.RemoveWatcherResponse:
        try:
            await self._watches.remove(request.watcher_id)
        except WatchError as exc:
            raise to_connect_error(exc) from exc
        return pb.RemoveWatcherResponse()
