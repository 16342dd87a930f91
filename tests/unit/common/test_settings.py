"""Settings precedence (flags > env > file > defaults) and readable errors."""

import pytest

from agent_sandbox.common.settings import ServiceSettings, SettingsError, load_settings


class DemoSettings(ServiceSettings):
    listen: str = "127.0.0.1:8080"
    replicas: int = 1
    cluster_id: str = "local"


def test_defaults():
    s = load_settings(DemoSettings)
    assert (s.listen, s.replicas, s.cluster_id) == ("127.0.0.1:8080", 1, "local")


def test_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("replicas: 3\ncluster-id: from-file\nlisten: file:1\n")
    monkeypatch.setenv("AGENT_SANDBOX_CLUSTER_ID", "from-env")
    monkeypatch.setenv("AGENT_SANDBOX_LISTEN", "env:2")
    s = load_settings(DemoSettings, flags={"listen": "flag:3", "replicas": None}, config_file=cfg)
    assert s.listen == "flag:3"  # flag beats env and file
    assert s.cluster_id == "from-env"  # env beats file
    assert s.replicas == 3  # file beats default; a None flag means "not given"


def test_errors_are_readable(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("replicas: many\nunknown: 1\n")
    with pytest.raises(SettingsError) as err:
        load_settings(DemoSettings, config_file=cfg)
    msg = str(err.value)
    assert "replicas" in msg and "unknown" in msg


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(DemoSettings, config_file=tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("[unclosed")
    with pytest.raises(SettingsError, match="not valid"):
        load_settings(DemoSettings, config_file=bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n")
    with pytest.raises(SettingsError, match="mapping"):
        load_settings(DemoSettings, config_file=lst)
