"""Fixtures of the node-agent tests (helpers live in nodekit.py)."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from nodekit import FAST_BACKOFF, NodeEnv, node_env, prepare_local_state


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NodeEnv]:
    settings = {**FAST_BACKOFF, "pull_delay": 0.05, "start_delay": 0.05, "crash_after": 0.3}
    async with node_env("sim", tmp_path_factory.mktemp("simnode"), settings) as env:
        yield env


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NodeEnv]:
    state = prepare_local_state(tmp_path_factory.mktemp("localnode"))
    settings = yaml.safe_load((state / "local.yaml").read_text())
    async with node_env("local", state, settings) as env:
        yield env
