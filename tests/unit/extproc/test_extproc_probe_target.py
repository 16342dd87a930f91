"""Where the readiness probe connects for a given ExtProc listen address."""

from __future__ import annotations

import pytest

from agent_sandbox.extproc.readiness import probe_target


@pytest.mark.parametrize(("listen", "target"), [
    ("127.0.0.1:9002", ("127.0.0.1", 9002)),
    ("0.0.0.0:9002", ("127.0.0.1", 9002)),
    (":9002", ("127.0.0.1", 9002)),
    ("[::]:9002", ("::1", 9002)),
    ("[::1]:9002", ("::1", 9002)),
    ("10.1.2.3:19002", ("10.1.2.3", 19002)),
])
def test_wildcards_are_probed_over_loopback(listen: str, target: tuple[str, int]) -> None:
    assert probe_target(listen) == target
