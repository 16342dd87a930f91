"""Sealed post-start hook bodies: secrets in hooks never sit readable in a pod annotation."""

from __future__ import annotations

import orjson
import pytest

from agent_sandbox.operator.lifecycle.hook_sealing import HookSealer, SealError
from agent_sandbox.operator.lifecycle.hooks import parse_hooks, seal_bodies

SID = "it-01jf0m3n5q7r9s1t3v5w7x9y0a"
OTHER = "it-01jf0m3n5q7r9s1t3v5w7x9y0b"


def test_sealed_body_opens_only_for_its_sandbox_and_secret():
    sealer = HookSealer("secret-one")
    body = {"envVars": {"API_TOKEN": "s3cr3t"}, "accessToken": "tok"}
    sealed = sealer.seal(body, SID)
    assert "s3cr3t" not in sealed and "tok" not in sealed
    assert sealer.open(sealed, SID) == body
    with pytest.raises(SealError):
        sealer.open(sealed, OTHER)  # copied onto another sandbox's pod
    with pytest.raises(SealError):
        HookSealer("secret-two").open(sealed, SID)
    with pytest.raises(SealError):
        sealer.open(sealed[:-4] + "AAAA", SID)
    with pytest.raises(SealError):
        sealer.open("v9.abc", SID)


def test_seal_bodies_keeps_hook_shape_and_leaves_exec_alone():
    hooks = parse_hooks([{"httpPost": {"port": 49983, "path": "/init", "body": {"envVars": {"K": "v4lue"}}}},
                         {"exec": {"command": ["true"]}}])
    sealed = seal_bodies(hooks, HookSealer("s"), SID)
    stored = orjson.dumps([h.model_dump(by_alias=True, exclude_none=True) for h in sealed]).decode()
    assert "v4lue" not in stored
    reparsed = parse_hooks(orjson.loads(stored))
    assert reparsed[0].httpPost is not None and reparsed[0].httpPost.body is None
    assert HookSealer("s").open(reparsed[0].httpPost.sealedBody or "", SID) == {"envVars": {"K": "v4lue"}}
    assert reparsed[1].exec_ is not None
