"""Fixtures for terminal tests: a real envd stands in for the sandbox's, behind the real API stack."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "api"))
sys.path.insert(0, str(HERE.parent / "envd"))

from envd_harness import Envd, start_envd  # noqa: E402
from native_stack import NativeStack  # noqa: E402


@pytest.fixture(scope="module")
def envd() -> Iterator[Envd]:
    server = start_envd()
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(envd: Envd) -> Iterator[NativeStack]:
    """The API stack whose operator reaches every sandbox's envd at the real envd above."""
    s = NativeStack(envd_url_template=envd.url).start()
    try:
        s.create_pool("term", 2)
        yield s
    finally:
        s.stop()
