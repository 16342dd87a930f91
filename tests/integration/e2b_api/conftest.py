"""Fixtures for the E2B API tests: the API stack of ``tests/integration/api`` (real operator, sim node)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from native_stack import NativeStack


@pytest.fixture(scope="module")
def stack() -> Iterator[NativeStack]:
    s = NativeStack().start()
    try:
        yield s
    finally:
        s.stop()
