"""The service images the chart runs: the Dockerfile's install step really yields the commands the chart calls.

One Dockerfile (``services/Dockerfile``) builds every Python service image, picked by the ``SERVICE`` build
argument. No container engine runs here, so its build-stage steps (its COPY sources and its ``uv sync`` line,
read from the file, not restated) are replayed into a scratch directory with the image's build argument; the
resulting environment must accept the exact container args the chart renders.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from helm_worker import REPO

pytestmark = pytest.mark.slow

IGNORE = shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", ".pytest_cache")

#: image -> (Deployment, container) of the chart running it
IMAGES = {"operator": ("agent-sandbox-operator", "operator"), "extproc": ("agent-sandbox-data-plane", "extproc")}


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = dockerfile.read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def _build_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    assert len(starts) == 2, "expected a build stage and a runtime stage"
    return instructions[starts[0]:starts[1]]


def _expand_build_arg(line: str, name: str, value: str) -> str:
    """``${NAME}`` / ``${NAME:?message}`` as the Dockerfile frontend expands a build argument."""
    return re.sub(r"\$\{" + name + r"(:\?[^}]*)?\}", value, line)


def _env(args: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(args))


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_install_step_provides_what_the_chart_runs(image, rendered, tmp_path):
    instructions = _instructions(REPO / "services" / "Dockerfile")
    build = _build_stage(instructions)
    assert ("ARG", "SERVICE") in build
    src, venv = tmp_path / "src", tmp_path / "app" / ".venv"
    env = {**os.environ}
    for op, args in build:
        if op == "ENV":
            env.update(_env(args))
        elif op == "COPY":
            *sources, dest = shlex.split(args)
            for source in sources:
                origin = REPO / source
                target = src / dest / origin.name if dest.endswith("/") else src / dest
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=IGNORE, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(origin, target)
    (run,) = [args for op, args in build if op == "RUN" and args.startswith("uv sync")]
    assert env.get("UV_PROJECT_ENVIRONMENT") == "/app/.venv"
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    for name in [n for n in env if n.startswith("VIRTUAL_ENV")]:
        del env[name]
    assert "${SERVICE" in run, "the install step must install the service named by the build argument"
    install = shlex.split(_expand_build_arg(run, "SERVICE", image))
    done = subprocess.run(install, cwd=src, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]

    # The runtime stage: agent-sandbox is the entry point, the user is the chart's non-root user.
    runtime = instructions[[i for i, (op, _) in enumerate(instructions) if op == "FROM"][1]:]
    assert ("ENTRYPOINT", '["agent-sandbox"]') in runtime
    user = next(args for op, args in runtime if op == "USER")
    pod_security = rendered("default").get("Deployment", IMAGES[image][0])["spec"]["template"]["spec"][
        "securityContext"]
    assert user == f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}"
    assert ("COPY", "--from=build /app/.venv /app/.venv") in runtime

    # The installed command accepts the chart's container args exactly.
    args = rendered("default").container(*IMAGES[image])["args"]
    parse = "import sys; from agent_sandbox.common.cli import build_parser; build_parser().parse_args(sys.argv[1:])"
    checked = subprocess.run([str(venv / "bin" / "python"), "-c", parse, *args], capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    if image == "operator":  # the operator talks to extproc through the ctrlplane client only: no Envoy inside
        assert not (venv / "bin" / "envoy").exists()
        assert not list(venv.glob("lib/python*/site-packages/agent_sandbox/extproc"))
    if image == "extproc":  # the same image runs the data plane's Envoy container
        version = subprocess.run([str(venv / "bin" / "envoy"), "--version"], capture_output=True, text=True,
                                 timeout=60, check=False)
        assert re.search(r"/1\.\d+\.\d+/", version.stdout), version.stdout + version.stderr
        # ...and its envoy-config init container, whose shell script needs a Debian userland (dash, coreutils,
        # sed are Essential packages): the runtime stage must be the Debian python image, not a distroless one.
        init = rendered("default").get("Deployment", IMAGES[image][0])["spec"]["template"]["spec"][
            "initContainers"][0]
        assert init["image"] == rendered("default").container(*IMAGES[image])["image"]
        assert init["command"][0] == "/bin/sh"
        (base,) = [args for op, args in runtime if op == "FROM"]
        default = next(args for op, args in instructions if op == "ARG" and args.startswith("PYTHON_IMAGE="))
        assert base == "${PYTHON_IMAGE}" and re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim-(bookworm|trixie)", default)
