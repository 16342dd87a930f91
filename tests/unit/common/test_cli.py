"""The one console command lists the installed services' subcommands."""

import subprocess
import sys
from pathlib import Path

from agent_sandbox.common.cli import build_parser, main

AGENT_SANDBOX = Path(sys.executable).with_name("agent-sandbox")


def test_console_script_shows_help_with_installed_subcommands():
    out = subprocess.run([str(AGENT_SANDBOX), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "localcluster" in out.stdout


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: agent-sandbox" in capsys.readouterr().out


def test_every_registered_subcommand_has_a_handler():
    parser = build_parser()
    subactions = [a for a in parser._actions if a.dest == "command"]
    assert subactions, "no subcommands registered"
    for name, sub in subactions[0].choices.items():
        assert sub.get_default("func") is not None, name
