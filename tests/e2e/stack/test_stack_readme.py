"""The README's Quickstart, run as written: ``scripts/up`` in one shell, the E2B example in another.

The second shell's snippet is taken from README.md verbatim (the ``bash`` block that ``eval``s the
exports), so the README cannot drift from what works. It runs in the repository root with the E2B
SDK's venv first on PATH (``python3`` there has ``e2b``) and the stack's state directory in
``AGENT_SANDBOX_STACK_STATE_DIR``; then Ctrl-C stops the stack and nothing of it is left.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "stack"))

from stack_harness import (  # noqa: E402
    NEEDS_LOCAL_NODE,
    UpProcess,
    bound,
    descendants,
    envd_harness,
    still_alive,
    write_config,
)

pytestmark = [NEEDS_LOCAL_NODE, pytest.mark.timeout(400)]


def quickstart_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    snippet = next(b for b in blocks if "status --exports" in b)
    assert "Sandbox.create()" in snippet and "kubectl get sbp,pods" in snippet
    return snippet


def test_readme_quickstart(tmp_path: Path) -> None:
    snippet = quickstart_snippet()
    sdk_python = envd_harness().sdk_python("2.63.0")  # type: ignore[attr-defined]
    up = UpProcess(tmp_path / "state", write_config(tmp_path / "stack.json")).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("E2B_", "AGENT_SANDBOX_", "KUBECONFIG"))}
        env.update(PATH=f"{sdk_python.parent}:{env['PATH']}", AGENT_SANDBOX_STACK_STATE_DIR=str(up.state_dir))
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", snippet], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"hello from base-\w+", result.stdout), result.stdout
        assert "\nhi\n" in result.stdout
        assert "sandboxpool.agentsandbox.io/base" in result.stdout and "pod/base-" in result.stdout
        assert up.proc is not None
        tree = descendants(up.proc.pid)
        ports = [p for svc in up.status()["services"].values() for p in svc["ports"].values()]
    finally:
        code = up.stop()
    assert code == 0, up.stderr_tail()
    assert still_alive(tree) == []
    assert [p for p in ports if bound("127.0.0.1", p)] == []
