"""Two nodes on one machine share 127/8: an address another process serves on is never handed out."""

import socket

from agent_sandbox.localcluster.node.ipam import IpAllocator, port_is_free


def test_address_in_use_is_skipped() -> None:
    with socket.socket() as busy:
        busy.bind(("127.88.0.2", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ipam = IpAllocator("127.88.0.0/24", is_free=port_is_free(port))
        assert ipam.allocate("pod-a") == "127.88.0.3"
    # Once the other process is gone the address is usable again.
    assert ipam.allocate("pod-b") == "127.88.0.4"
    ipam.release("pod-a")
    assert IpAllocator("127.88.0.0/24", is_free=port_is_free(port)).allocate("pod-c") == "127.88.0.2"
