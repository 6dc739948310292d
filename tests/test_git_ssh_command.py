"""--setup-git's core.sshCommand: a plain `git push` reuses one ssh connection (and
resolves hosts through TOVA_SSH_CONFIG when one is in use)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tova.client.bootstrap import SetupResult, ensure_ssh_command, ssh_command_for


def _repo(tmp_path: Path) -> Path:
    project = tmp_path / "p"
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    return project


def _get(project: Path) -> str:
    return subprocess.run(["git", "-C", str(project), "config", "--local", "--get", "core.sshCommand"],
                          capture_output=True, text=True).stdout.strip()


def _server(config: str | None) -> SimpleNamespace:
    return SimpleNamespace(conn=SimpleNamespace(config=config))


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.mark.parametrize("config", [None, "/etc/tova/ssh config"])
def test_the_git_ssh_command_multiplexes_and_keeps_the_config(tmp_path, home, config):
    project = _repo(tmp_path)
    ensure_ssh_command(project, _server(config), SetupResult())
    argv = shlex.split(_get(project))
    assert argv[0] == "ssh" and ("-F" in argv) == bool(config)
    if config:
        assert argv[argv.index("-F") + 1] == config
    assert {"ControlMaster=auto", "ControlPath=~/.ssh/tova-%C", "ControlPersist=10m"} <= set(argv)
    # ssh needs the socket's directory; only its owner may reach the connection
    assert (home / ".ssh").stat().st_mode & 0o777 == 0o700


def test_an_earlier_setup_is_upgraded_and_a_foreign_command_is_left(tmp_path):
    project = _repo(tmp_path)
    subprocess.run(["git", "-C", str(project), "config", "core.sshCommand", "ssh -F /c/ssh_config"], check=True)
    ensure_ssh_command(project, _server("/c/ssh_config"), SetupResult())
    assert _get(project) == ssh_command_for("/c/ssh_config")

    subprocess.run(["git", "-C", str(project), "config", "core.sshCommand", "ssh -i ~/.ssh/deploy"], check=True)
    result = SetupResult()
    ensure_ssh_command(project, _server("/c/ssh_config"), result)
    assert _get(project) == "ssh -i ~/.ssh/deploy"
    assert any("left as is" in line for line in result.lines)
