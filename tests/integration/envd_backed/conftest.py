"""Fixtures for API tests whose sandboxes need a working envd (terminal, is_ready).

The ``sim`` node runs no processes, so a real envd stands in for every sandbox's envd behind the real
API stack (operator + embedded control plane).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "api"))
sys.path.insert(0, str(HERE.parent / "envd"))

from envd_harness import Envd  # noqa: E402
from envd_harness import envd as envd  # noqa: E402
from native_stack import NativeStack  # noqa: E402

POOL = "main"
POOL_SIZE = 2


@pytest.fixture(scope="module")
def pool() -> str:
    """The pool every sandbox of these tests is claimed from (``POOL_SIZE`` idle pods)."""
    return POOL


@pytest.fixture(scope="module")
def stack(envd: Envd) -> Iterator[NativeStack]:
    """The API stack whose operator reaches every sandbox's envd at the real envd above."""
    s = NativeStack(envd_url_template=envd.url).start()
    try:
        s.create_pool(POOL, POOL_SIZE)
        yield s
    finally:
        s.stop()
