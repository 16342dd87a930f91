"""Timed ``commands.run("true")`` round trips through the E2B SDK (runs inside an SDK venv).

Usage: ``python sdk_roundtrip_driver.py WARMUP COUNT``; prints one JSON line of latencies in ms.
"""

from __future__ import annotations

import json
import os
import sys
import time

from e2b import Sandbox


def main() -> None:
    warmup, count = int(sys.argv[1]), int(sys.argv[2])
    sbx = Sandbox.create()
    try:
        for _ in range(warmup):
            sbx.commands.run("true")
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            sbx.commands.run("true")
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        sbx.kill()
    print(json.dumps({"samples_ms": samples}), flush=True)
    os._exit(0)  # skip the SDK's native client teardown (see tests' driver)


if __name__ == "__main__":
    main()
