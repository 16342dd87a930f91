"""Fixture of the idempotency tests: two operator replicas on one embedded control plane (``idem_stack``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from idem_stack import TwoReplicas, two_replicas


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def two(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TwoReplicas]:
    async with two_replicas(tmp_path_factory.mktemp("idem")) as env:
        yield env
