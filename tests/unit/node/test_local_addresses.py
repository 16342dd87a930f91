"""Machine-wide pod address leases of the local nodes."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from agent_sandbox.localcluster.node.ipam import IpAllocator
from agent_sandbox.localcluster.node.local.addresses import AddressLeases


def test_an_address_has_one_holder_until_released(tmp_path: pathlib.Path) -> None:
    a, b = AddressLeases(tmp_path), AddressLeases(tmp_path)
    assert a.claim("127.77.0.2") and a.claim("127.77.0.2")  # idempotent for the holder
    assert not b.claim("127.77.0.2")
    a.release("127.77.0.2")
    assert b.claim("127.77.0.2") and not a.claim("127.77.0.2")
    b.close()
    assert a.claim("127.77.0.2") and len(a) == 1


def test_two_allocators_sharing_leases_never_hand_out_the_same_address(tmp_path: pathlib.Path) -> None:
    leases = [AddressLeases(tmp_path), AddressLeases(tmp_path)]
    nodes = [IpAllocator("127.77.0.0/29", is_free=lease.claim) for lease in leases]
    ips = [node.allocate(f"pod-{i}-{j}") for j in range(2) for i, node in enumerate(nodes)]
    assert len(set(ips)) == 4


def test_a_dead_holder_frees_its_addresses(tmp_path: pathlib.Path) -> None:
    script = ("import sys, pathlib; from agent_sandbox.localcluster.node.local.addresses import AddressLeases; "
              f"l = AddressLeases(pathlib.Path({str(tmp_path)!r})); assert l.claim('127.77.0.9'); "
              "print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert not AddressLeases(tmp_path).claim("127.77.0.9")
    finally:
        proc.kill()
        proc.wait(10)
    assert AddressLeases(tmp_path).claim("127.77.0.9")
