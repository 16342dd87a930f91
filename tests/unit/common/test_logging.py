"""Logs are JSON lines in production and never carry secrets."""

import json

from agent_sandbox.common.logging import configure_logging, get_logger


def test_json_lines_and_secret_redaction(capsys):
    configure_logging(level="info", json=True)
    log = get_logger("test")
    log.info("key created", api_key="asb_" + "a" * 40, token_hash="abc", user="alice")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["event"] == "key created"
    assert event["api_key"] == "***"
    assert event["token_hash"] == "abc"  # hashes are not secrets
    assert event["user"] == "alice"
    assert "a" * 40 not in line
