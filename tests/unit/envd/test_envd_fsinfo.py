"""Entry descriptions and depth-limited listing (what ``files.list``/``get_info`` show)."""

from __future__ import annotations

import os
from pathlib import Path

from agent_sandbox.envd.fsinfo import KIND_DIR, KIND_FILE, describe, walk


def test_walk_respects_depth_and_skips_symlinked_dirs(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    (tmp_path / "top.txt").write_text("top")
    os.symlink(tmp_path / "a", tmp_path / "link")

    def names(depth: int) -> list[str]:
        return [os.path.relpath(e.path, tmp_path) for e in walk(str(tmp_path), depth)]

    assert names(1) == ["a", "link", "top.txt"]
    assert names(0) == names(1), "depth 0 means 1"
    assert names(2) == ["a", "link", "top.txt", "a/b"], "a symlinked directory is listed, not entered"
    assert "a/b/c/deep.txt" in names(4)


def test_describe_file_dir_and_symlink(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("hello")
    os.chmod(target, 0o640)
    entry = describe(str(target))
    assert (entry.name, entry.kind, entry.size, entry.permissions) == ("f.txt", KIND_FILE, 5, "-rw-r-----")
    assert entry.symlink_target is None and entry.mtime_ns == target.stat().st_mtime_ns
    assert describe(str(tmp_path)).kind == KIND_DIR
    os.symlink("f.txt", tmp_path / "l")
    link = describe(str(tmp_path / "l"))
    assert (link.kind, link.symlink_target) == (KIND_FILE, str(target))
    os.symlink("missing", tmp_path / "dangling")
    assert describe(str(tmp_path / "dangling")).symlink_target == str(tmp_path / "missing")
