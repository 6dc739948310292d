"""Issue 15 points 2 and 3: the `tova-deploy` command, the note when another `tova` comes
first on PATH, and every value the client forwards arriving on the server as one argument."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tova import cli
from tova.client import commands
from tova.server.cli import build_parser as release_parser

REPO = Path(__file__).resolve().parent.parent
MINIMAL = REPO / "examples" / "minimal"
HOSTILE_VALUES = ["-2min", "--x", "a value with spaces", "it's \"quoted\"", "-", "=x", "--since=1"]


class _FakeServer:
    """Records the tova-release argv the client would run over ssh."""

    calls: list[list[str]] = []

    def __init__(self, *a, **kw) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def connect(self):
        pass

    display = "fake"

    def release(self, args, **kw):
        _FakeServer.calls.append(list(args))
        return type("R", (), {"exit_code": 0})()

    def release_attached(self, args):
        _FakeServer.calls.append(list(args))
        return 0


@pytest.fixture
def fake_server(monkeypatch):
    _FakeServer.calls = []
    monkeypatch.setattr(commands, "_server", lambda manifest: _FakeServer())
    return _FakeServer.calls


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("form", ["separate", "joined"])
def test_since_arrives_on_the_server_as_one_argument(fake_server, value, form):
    since = ["--since", value] if form == "separate" else [f"--since={value}"]
    assert cli.main(["deploy", "prod", "--logs", *since, "--project", str(MINIMAL)]) == 0
    (argv,) = fake_server
    # What ssh carries: one shell-quoted string, split by the server's shell.
    remote = shlex.split(shlex.join(["tova-release", *argv]))[1:]
    parsed = release_parser().parse_args(remote)
    assert parsed.cmd == "logs" and parsed.app == "minimal" and parsed.since == value


@pytest.mark.parametrize("value", ["-2min", "v3", "--x"])
def test_rollback_to_is_one_argument(fake_server, value):
    assert cli.main(["deploy", "prod", "--rollback", "--to", value, "--project", str(MINIMAL)]) == 0
    (argv,) = fake_server
    parsed = release_parser().parse_args(shlex.split(shlex.join(argv)))
    assert parsed.cmd == "rollback" and parsed.to == value


def test_journalctl_gets_since_as_one_argument():
    from tova.server import host_commands

    argv = host_commands.journal("a", [3000], "-2min", False)
    assert "--since=-2min" in argv and "-2min" not in argv


def test_a_time_journalctl_cannot_read_is_a_cause_and_a_remedy(monkeypatch, capfd):
    """The value arrives whole; when journalctl cannot read it, one line of cause and one
    of remedy instead of its bare "Failed to parse timestamp"."""
    from tova.errors import EXIT_USAGE, TovaError
    from tova.layout import Layout
    from tova.server import systemd

    def journalctl(stderr: str, rc: int):
        return lambda *a: ["sh", "-c", f"echo line; echo '{stderr}' >&2; exit {rc}"]

    monkeypatch.setattr(systemd.cmd, "journal", journalctl("Failed to parse timestamp: --x", 1))
    with pytest.raises(TovaError) as err:
        systemd.SystemdSystem(Layout.of("/nonexistent")).logs("a", [3000], "--x", False)
    assert err.value.message == "journalctl cannot read the time '--x'" and err.value.exit_code == EXIT_USAGE
    assert "--since -2min" in (err.value.hint or "")
    monkeypatch.setattr(systemd.cmd, "journal", journalctl("-- No entries --", 0))
    assert systemd.SystemdSystem(Layout.of("/nonexistent")).logs("a", [3000], "-2min", False) == 0
    out, errs = capfd.readouterr()
    assert out == "line\nline\n" and "No entries" in errs


def test_join_option_values_leaves_other_arguments_alone():
    assert cli.join_option_values(["deploy", "prod", "--since", "-2min", "--follow"]) == \
        ["deploy", "prod", "--since=-2min", "--follow"]
    assert cli.join_option_values(["env", "prod", "set", "--", "--since", "x"]) == \
        ["env", "prod", "set", "--", "--since", "x"]
    assert cli.join_option_values(["deploy", "prod", "--since"]) == ["deploy", "prod", "--since"]


def test_project_dir_starting_with_a_dash(tmp_path, monkeypatch, capsys):
    weird = tmp_path / "-proj"
    import shutil

    shutil.copytree(MINIMAL, weird)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["deploy", "prod", "--plan", "--local", "--project", "-proj"]) == 0
    assert 'Deploy plan for "prod"' in capsys.readouterr().out


def _run(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "import sys; from tova.cli import deploy_main; sys.exit(deploy_main())", *argv],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
    )


def test_tova_deploy_takes_the_same_arguments_as_tova_deploy():
    ours = _run(["prod", "--plan", "--local", "--project", str(MINIMAL)])
    theirs = subprocess.run(
        [sys.executable, "-m", "tova.cli", "deploy", "prod", "--plan", "--local", "--project", str(MINIMAL)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1"),
    )
    assert ours.returncode == 0 and ours.stdout == theirs.stdout


def test_tova_deploy_env_is_tova_env(fake_server, monkeypatch):
    seen = {}
    monkeypatch.setattr(
        commands, "cmd_env", lambda project, manifest, action, items: seen.update(action=action, items=items) or 0
    )
    assert cli.deploy_main(["env", "prod", "set", "A=-x", "--project", str(MINIMAL)]) == 0
    assert seen == {"action": "set", "items": ["A=-x"]}


def test_tova_deploy_hints_name_tova_deploy(capsys, tmp_path):
    """Its user's `tova` is the compiler's: a remedy must not send them there."""
    assert cli.deploy_main([]) != 0
    assert "hint: name a deploy block, e.g. tova-deploy prod --plan" in capsys.readouterr().err
    assert cli.deploy_main(["env", "prod", "unset", "--project", str(MINIMAL)]) != 0
    assert "hint: tova-deploy env prod unset NAME" in capsys.readouterr().err
    assert cli.main(["deploy"]) != 0
    assert "e.g. tova deploy prod --plan" in capsys.readouterr().err


def test_tova_deploy_never_hands_over_to_the_compiler():
    r = _run(["build", "--plan", "--local", "--project", str(MINIMAL)])
    # "build" is taken as an environment name, not handed to a compiler.
    assert r.returncode == 2 and "build" in r.stderr and "deploy toolkit" not in r.stderr


def test_tova_deploy_is_a_console_script():
    text = (REPO / "pyproject.toml").read_text()
    assert 'tova-deploy = "tova.cli:deploy_main"' in text


def _fake_tova(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fake = directory / "tova"
    fake.write_text("#!/bin/sh\necho 'the compiler: deploy is not implemented'\n")
    fake.chmod(0o755)
    return fake


def test_plan_says_once_when_another_tova_comes_first_on_path(tmp_path):
    fake = _fake_tova(tmp_path / "compiler-bin")
    path = f"{fake.parent}:{os.environ['PATH']}"
    r = _run(["prod", "--plan", "--local", "--project", str(MINIMAL)], env={"PATH": path})
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(f"`tova` on your PATH is {fake}") == 1
    assert "tova-deploy" in r.stdout


def test_plan_says_nothing_when_our_tova_comes_first(tmp_path):
    ours = tmp_path / "bin" / "tova"
    ours.parent.mkdir()
    ours.write_text(f"#!{sys.executable}\nimport sys\nfrom tova.cli import main\nsys.exit(main())\n")
    ours.chmod(0o755)
    _fake_tova(tmp_path / "later")
    r = _run(["prod", "--plan", "--local", "--project", str(MINIMAL)],
             env={"PATH": f"{ours.parent}:{tmp_path / 'later'}:/usr/bin:/bin"})
    assert r.returncode == 0 and "on your PATH" not in r.stdout
