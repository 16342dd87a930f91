"""An API server started as a child process does not outlive its parent, however the parent ends."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys

from agent_sandbox.localcluster.app import LocalClusterProcess

PARENT = """
import asyncio, sys
from agent_sandbox.localcluster.app import LocalClusterProcess

async def main():
    async with LocalClusterProcess(state_dir=sys.argv[1], node="none") as proc:
        print(proc.process.pid, flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


def running(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_the_api_server_shuts_down_when_the_process_that_started_it_is_killed(
        tmp_path: pathlib.Path) -> None:
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", PARENT, str(tmp_path),
                                                  stdout=asyncio.subprocess.PIPE)
    assert parent.stdout is not None
    child = int(await asyncio.wait_for(parent.stdout.readline(), 60))
    assert running(child)
    parent.send_signal(signal.SIGKILL)  # no clean-up code of the parent runs
    await parent.wait()
    for _ in range(100):
        if not running(child):
            break
        await asyncio.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the API server kept running after its parent was killed")
    log = (tmp_path / "localcluster.log").read_text()
    assert "is gone; shutting down" in log


async def test_a_child_api_server_keeps_serving_while_its_parent_lives(tmp_path: pathlib.Path) -> None:
    async with LocalClusterProcess(state_dir=tmp_path, node="none") as proc:
        await asyncio.sleep(1.5)
        assert await proc.healthy()
