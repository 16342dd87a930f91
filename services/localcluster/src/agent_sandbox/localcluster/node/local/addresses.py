"""Machine-wide leases on the loopback addresses ``local`` nodes hand to pods.

A ``local`` node has no network namespace per pod: a pod's envd listens on
``<podIP>:49983`` on the host's ``lo``. Every node allocates from the same
default CIDR, so two nodes on one machine (two stacks, a test next to a
benchmark) used to give their first pods the same addresses. The second envd
then failed to bind (its container "restarted unexpectedly" right after an
in-place swap) and the operator's ``/init`` reached the *other* stack's envd
(401/404). Idle pods do not listen at all, so probing the port at allocation
time cannot see the clash.

A lease is an exclusive ``flock`` on ``<directory>/<ip>``: held while the pod
has the address, dropped by the kernel when the node process dies, so a crashed
node never strands an address. Lock files are never unlinked (unlinking races
another node's lock on the same path).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

DEFAULT_DIRECTORY = Path(tempfile.gettempdir()) / "agent-sandbox-pod-addresses"


class AddressLeases:
    """Exclusive claims on addresses, shared by every process on this machine using ``directory``."""

    def __init__(self, directory: Path = DEFAULT_DIRECTORY) -> None:
        self._dir = directory
        self._held: dict[str, int] = {}  # address -> fd holding its flock

    def claim(self, ip: str) -> bool:
        """Take ``ip`` for this process; False when another process holds it."""
        if ip in self._held:
            return True
        self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._dir / ip, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[ip] = fd
        return True

    def release(self, ip: str) -> None:
        fd = self._held.pop(ip, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the only descriptor drops the flock

    def close(self) -> None:
        for ip in list(self._held):
            self.release(ip)

    def __len__(self) -> int:
        return len(self._held)
