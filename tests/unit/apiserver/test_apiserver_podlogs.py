"""Which container a log request means, and how tailLines/limitBytes trim the output."""

from __future__ import annotations

import pytest

from agent_sandbox.localcluster.apiserver.podlogs import PodLogSources, pick_container, trim

ONE = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}]}}
TWO = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}, {"name": "side"}]}}


def test_pick_container() -> None:
    assert pick_container(ONE, None) == "main"
    assert pick_container(TWO, "side") == "side"
    with pytest.raises(ValueError, match="container other is not valid for pod p"):
        pick_container(ONE, "other")
    with pytest.raises(ValueError, match="must be specified"):
        pick_container(TWO, None)


def test_trim_tail_then_limit() -> None:
    data = b"a\nbb\nccc\n"
    assert trim(data, None, None) == data
    assert trim(data, 2, None) == b"bb\nccc\n"
    assert trim(data, 10, None) == data
    assert trim(data, 0, None) == b""
    assert trim(data, 2, 4) == b"bb\nc"
    assert trim(b"no newline", 1, None) == b"no newline"


async def test_sources_default_to_empty_and_unregister() -> None:
    sources = PodLogSources()

    async def reader(uid: str, container: str) -> bytes:
        return f"{uid}/{container}".encode()

    assert await sources.read("n1", "u", "c") == b""
    sources.register("n1", reader)
    assert await sources.read("n1", "u", "c") == b"u/c"
    sources.register("n1", None)
    assert await sources.read("n1", "u", "c") == b""
