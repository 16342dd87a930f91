"""Stream ``multipart/form-data`` uploads straight into their destination files.

The SDK sends every file as a part named ``file`` whose *filename* is the
destination path (a ``path`` query parameter, allowed for single-file uploads,
wins). Parts are written while they arrive — no spooling, no size limit beyond
the disk — through ``python-multipart``'s streaming parser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header


class UploadError(ValueError):
    """The upload is malformed; the message is safe to show to the caller."""


def multipart_boundary(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError("expected multipart/form-data with a boundary")
    return boundary


class MultipartFiles:
    """Feed body chunks with :meth:`feed`; ``open_target(name)`` opens the file for one ``file`` part."""

    def __init__(self, boundary: bytes, open_target: Callable[[str], IO[bytes]], path_override: str | None) -> None:
        self._open_target = open_target
        self._path_override = path_override
        self.written: list[str] = []
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._current: IO[bytes] | None = None
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_chunk,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        })

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise UploadError(f"malformed multipart body: {exc}") from exc

    def finish(self) -> list[str]:
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise UploadError(f"malformed multipart body: {exc}") from exc
        self.close()
        if not self.written:
            raise UploadError("multipart body has no part named 'file'")
        return self.written

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    # --- parser callbacks ----------------------------------------------------------------------

    def _part_begin(self) -> None:
        self._disposition = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_chunk(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") != b"file":
            return  # other parts are ignored
        if self._path_override is not None:
            if self.written:
                raise UploadError("query parameter 'path' is only allowed with a single file")
            target = self._path_override
        else:
            target = options.get(b"filename", b"").decode("utf-8", "replace")
            if not target:
                raise UploadError("each file part needs a filename (the destination path)")
        self._current = self._open_target(target)
        self.written.append(self._current.name if isinstance(self._current.name, str) else target)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self._current.write(data[start:end])

    def _part_end(self) -> None:
        self.close()
