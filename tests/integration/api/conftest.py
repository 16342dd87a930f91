from collections.abc import Iterator

import pytest
from native_stack import NativeStack


@pytest.fixture(scope="module")
def stack() -> Iterator[NativeStack]:
    s = NativeStack().start()
    try:
        yield s
    finally:
        s.stop()
