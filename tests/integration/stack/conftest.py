"""Fixtures of the stack tests: one ``scripts/up`` stack per module, SDK venvs from the envd tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack_harness import UpProcess, envd_harness, write_config


@pytest.fixture(scope="session")
def sdk_pythons() -> dict[str, Path]:
    harness = envd_harness()
    return {version: harness.sdk_python(version) for version in harness.SDK_VERSIONS}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    base = tmp_path_factory.mktemp("stack")
    up = UpProcess(base / "state", write_config(base / "stack.json", replicas=3)).start()
    try:
        yield up
    finally:
        up.stop()
