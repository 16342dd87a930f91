"""Module-scoped data-plane stack: embedded control plane, upstreams, extproc, real Envoy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from extproc_stack import Stack, running_stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("dataplane")) as s:
        yield s
