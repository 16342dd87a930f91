"""Pod IP allocation from the node's pod CIDR, optionally persisted to a JSON file.

Every Pod needs a distinct ``podIP`` because clients (Envoy, the operator's
``/init`` call) reach a sandbox at ``podIP:49983``. The ``local`` node uses
loopback addresses (all of 127/8 reaches ``lo`` on Linux), so a distinct
address per pod lets each envd bind the same port. The allocation is persisted
so a node restart hands a surviving pod the same address; the network and
broadcast addresses and the first host (the node's own) are never handed out.
Several nodes on one machine (two stacks, tests) share 127/8, so an optional
``is_free`` probe skips addresses something else already serves on.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path


class PoolExhausted(RuntimeError):
    pass


class IpAllocator:
    def __init__(self, cidr: str, persist: Path | None = None,
                 is_free: Callable[[str], bool] | None = None) -> None:
        self._is_free = is_free
        self._net = ipaddress.ip_network(cidr, strict=False)
        self._first = int(self._net.network_address) + 2
        self._last = int(self._net.broadcast_address) - 1
        self._persist = persist
        self._by_owner: dict[str, int] = {}
        self._used: set[int] = set()
        self._cursor = self._first
        if persist and persist.exists():
            for owner, ip in json.loads(persist.read_text() or "{}").items():
                self.reserve(owner, ip, save=False)

    def __len__(self) -> int:
        return len(self._by_owner)

    def get(self, owner: str) -> str | None:
        value = self._by_owner.get(owner)
        return str(ipaddress.ip_address(value)) if value is not None else None

    def reserve(self, owner: str, ip: str, *, save: bool = True) -> bool:
        """Record ``owner``'s existing address (from a persisted file or a pod's status)."""
        try:
            value = int(ipaddress.ip_address(ip))
        except ValueError:
            return False
        if not self._first <= value <= self._last or (value in self._used and self._by_owner.get(owner) != value):
            return False
        self._by_owner[owner] = value
        self._used.add(value)
        if save:
            self._save()
        return True

    def allocate(self, owner: str) -> str:
        if owner in self._by_owner:
            return self.get(owner) or ""
        span = self._last - self._first + 1
        for _ in range(span):
            value = self._cursor
            self._cursor = self._first if value >= self._last else value + 1
            if value not in self._used and (self._is_free is None or self._is_free(str(ipaddress.ip_address(value)))):
                self._by_owner[owner] = value
                self._used.add(value)
                self._save()
                return str(ipaddress.ip_address(value))
        raise PoolExhausted(f"no free address left in {self._net}")

    def release(self, owner: str) -> None:
        value = self._by_owner.pop(owner, None)
        if value is not None:
            self._used.discard(value)
            self._save()

    def _save(self) -> None:
        if self._persist is None:
            return
        tmp = self._persist.with_suffix(".tmp")
        tmp.write_text(json.dumps({o: str(ipaddress.ip_address(v)) for o, v in self._by_owner.items()}))
        os.replace(tmp, self._persist)


def port_is_free(port: int) -> Callable[[str], bool]:
    """A probe for :class:`IpAllocator`: true when nothing listens on ``ip:port`` (e.g. another node's envd)."""
    def probe(ip: str) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                return False
        return True

    return probe
