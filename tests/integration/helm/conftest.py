"""Fixtures for the Helm chart tests: the chart loaded once, renders cached per value set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import helm_python as helm
import pytest
from helm_worker import VALUE_SETS, Rendered, load_chart, render


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    loaded = load_chart()
    try:
        yield loaded
    finally:
        loaded.close()


@pytest.fixture(scope="session")
def rendered(chart: helm.Chart) -> Callable[[str], Rendered]:
    """Render of a named value set from :data:`VALUE_SETS`, computed once per session."""
    cache: dict[str, Rendered] = {}

    def get(value_set: str) -> Rendered:
        if value_set not in cache:
            cache[value_set] = render(chart, VALUE_SETS[value_set])
        return cache[value_set]

    return get


@pytest.fixture(scope="session")
def render_with(chart: helm.Chart) -> Callable[[dict[str, Any]], Rendered]:
    return lambda values: render(chart, values)
