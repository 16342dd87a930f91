"""Streaming multipart uploads: parts named ``file`` land at their filename (or the ``path`` override)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_sandbox.envd.uploads import MultipartFiles, UploadError, multipart_boundary

BOUNDARY = b"xyzBOUNDARY"


def body(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n\r\n" + data + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n"


def upload(tmp_path: Path, payload: bytes, override: str | None = None, chunk: int = 7) -> list[str]:
    files = MultipartFiles(BOUNDARY, lambda target: (tmp_path / target.lstrip("/")).open("wb"), override)
    try:
        for start in range(0, len(payload), chunk):  # arbitrary chunk borders, as from the network
            files.feed(payload[start:start + chunk])
        return files.finish()
    finally:
        files.close()


def test_files_are_written_where_their_filename_says(tmp_path: Path) -> None:
    written = upload(tmp_path, body(("file", "/a.txt", b"alpha"), ("other", None, b"ignored"),
                                    ("file", "/b.bin", b"\x00\xff" * 1000)))
    assert [Path(p).name for p in written] == ["a.txt", "b.bin"]
    assert (tmp_path / "a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff" * 1000


def test_path_override_applies_to_a_single_file(tmp_path: Path) -> None:
    upload(tmp_path, body(("file", "/ignored.txt", b"data")), override="chosen.txt")
    assert (tmp_path / "chosen.txt").read_bytes() == b"data" and not (tmp_path / "ignored.txt").exists()
    with pytest.raises(UploadError, match="single file"):
        upload(tmp_path, body(("file", "/1", b"x"), ("file", "/2", b"y")), override="chosen.txt")


@pytest.mark.parametrize("payload", [body(("other", None, b"x")), body(("file", "", b"x"))])
def test_bad_uploads_are_rejected(tmp_path: Path, payload: bytes) -> None:
    with pytest.raises(UploadError):
        upload(tmp_path, payload)


def test_boundary_parsing() -> None:
    assert multipart_boundary('multipart/form-data; boundary="abc"') == b"abc"
    for bad in ("application/json", "multipart/form-data"):
        with pytest.raises(UploadError):
            multipart_boundary(bad)
