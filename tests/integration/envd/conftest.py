"""Fixtures for envd integration tests: a real envd, the fake control plane, SDK venvs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from envd_harness import SDK_VERSIONS, ControlPlane, Envd, sdk_python, start_control_plane
from envd_harness import envd as envd


@pytest.fixture(scope="module")
def control_plane(envd: Envd) -> Iterator[ControlPlane]:
    cp = start_control_plane(envd.url)
    yield cp
    cp.close()


@pytest.fixture(scope="session")
def sdk_pythons() -> dict[str, Path]:
    """One venv per pinned E2B SDK version (created once, then reused from the cache)."""
    return {version: sdk_python(version) for version in SDK_VERSIONS}
