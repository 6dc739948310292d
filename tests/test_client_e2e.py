"""The client end to end through a real sshd: the toolkit installed over ssh into a temp
root (offline wheels, the same path as on servers), then `tova env`, status and list."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sshd_harness

import tova
from tova.client import commands
from tova.errors import MissingSecretsError, TovaError
from tova.manifest import Manifest, Secrets

pytestmark = [
    pytest.mark.e2e,  # each test installs the toolkit over a real sshd: tens of seconds
    pytest.mark.skipif(not sshd_harness.available(), reason="needs openssh-server and ssh"),
]

HOSTILE = {
    "SPACES": "a value with spaces",
    "EQUALS": "k=v=w",
    "QUOTES": "it's \"quoted\"",
    "HASH": "#not-a-comment # really",
    "SUBST": "$(touch /tmp/tova-env-pwned) `id`",
}


FIXTURE_COMPILER = Path(__file__).parent / "fixtures" / "tova-fixture-compiler"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("client-e2e")
    server = sshd_harness.make_server(base / "sshd")
    server.start()
    root = base / "srv-root"  # the server refuses roots with spaces (they reach shell scripts)
    links = base / "bin"
    project = base / "project"
    project.mkdir()
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (project / "app.tova").write_text('server { route GET "/" => fn() "hi" }\n')
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("TOVA_SSH_CONFIG", str(server.ssh_config))
    mp.setenv("TOVA_REMOTE_ROOT", str(root))
    mp.setenv("TOVA_REMOTE_SYSTEM", "local")
    mp.setenv("TOVA_REMOTE_LINK_DIR", str(links))
    manifest = Manifest(
        env="prod", app="myapp", project="myapp", server=server.target, domain="myapp.test",
        secrets=Secrets(required=("JWT_SECRET",)),
    )
    yield {"server": server, "root": root, "links": links, "project": project, "manifest": manifest}
    mp.undo()
    server.stop()
    # A test that failed half-way may have left the app running: end it by its pid.
    from tova.layout import Layout
    from tova.server.local_system import LocalSystem

    LocalSystem(Layout.of(root)).stop_all()


@pytest.fixture(scope="module")
def set_up(world):
    """setup-git with --offline: wheels built here, uploaded over ssh, pip-installed; the
    compiler uploaded too (--compiler), as for a server that cannot download."""
    rc = commands.cmd_setup_git(world["project"], world["manifest"], offline=True, compiler=FIXTURE_COMPILER)
    assert rc == 0
    return world


def test_setup_git_uploads_the_compiler(set_up, capsys):
    link = set_up["root"] / "compiler" / "tova"
    assert link.is_symlink() and (set_up["root"] / "compiler" / "uploaded" / "tova").is_file()
    assert (set_up["root"] / "compiler" / "version").read_text() == "0.11.26\n"
    # A second setup-git finds it in place and says which versions the server has.
    assert commands.cmd_setup_git(set_up["project"], set_up["manifest"], offline=True) == 0
    assert "Bun 1.4.5, Tova compiler 0.11.26" in capsys.readouterr().out


def test_setup_git_uploads_a_compiler_directory_with_a_start_command(set_up, capsys, tmp_path):
    """--compiler DIR: a directory (the compiler's source with its node_modules, say) whose
    bin/tova.js Bun runs; its .git stays home. Then a binary again replaces it."""
    src = tmp_path / "tova-lang"
    (src / "bin").mkdir(parents=True)
    (src / "src").mkdir()
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (src / "src" / "version.js").write_text('export const VERSION = "0.11.26";\n')
    entry = src / "bin" / "tova.js"
    entry.write_text('#!/usr/bin/env bun\nimport { VERSION } from "../src/version.js";\n'
                     'if (process.argv.includes("--version")) console.log(`Tova v${VERSION}`);\n')
    entry.chmod(0o644)  # as a checkout may have it: the upload makes the start command executable
    root = set_up["root"] / "compiler"
    assert commands.cmd_setup_git(set_up["project"], set_up["manifest"], offline=True, compiler=src) == 0
    assert "Tova compiler 0.11.26 (uploaded)" in capsys.readouterr().out
    assert (root / "tova").readlink() == Path("uploaded/bin/tova.js")
    assert (root / "uploaded" / "src" / "version.js").is_file() and not (root / "uploaded" / ".git").exists()
    with pytest.raises(TovaError, match="has none of bin/tova"):
        commands.cmd_setup_git(set_up["project"], set_up["manifest"], offline=True, compiler=src / "src")
    assert commands.cmd_setup_git(set_up["project"], set_up["manifest"], offline=True,
                                  compiler=FIXTURE_COMPILER) == 0
    assert (root / "tova").readlink() == Path("uploaded/tova") and not (root / "uploaded" / "bin").exists()


def test_setup_git_installs_toolkit_repo_and_remote(set_up, capsys):
    w = set_up
    out = subprocess.run(
        [str(w["root"] / "toolkit/bin/tova-release"), "version", "--json"],
        capture_output=True,
        text=True,
        env={"TOVA_ROOT": str(w["root"]), "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(out.stdout)["version"] == tova.__version__
    assert (w["links"] / "tova-release").resolve() == (w["root"] / "toolkit/bin/tova-release").resolve()
    assert (w["root"] / "apps/myapp/repo.git").is_dir()
    url = subprocess.run(
        ["git", "-C", str(w["project"]), "remote", "get-url", "prod"], capture_output=True, text=True
    ).stdout.strip()
    assert url == f"ssh://root@127.0.0.1:{w['server'].port}{w['root']}/apps/myapp/repo.git"


def test_setup_git_makes_a_plain_git_command_use_the_custom_ssh_config(set_up):
    """TOVA_SSH_CONFIG reaches the project's git config (core.sshCommand), so `git push
    prod main` works as printed without GIT_SSH_COMMAND."""
    import os
    import shlex

    project = set_up["project"]
    got = subprocess.run(["git", "-C", str(project), "config", "core.sshCommand"], capture_output=True, text=True)
    argv = shlex.split(got.stdout)
    assert argv[:3] == ["ssh", "-F", os.path.abspath(set_up["server"].ssh_config)]
    assert "ControlMaster=auto" in argv and "ControlPath=~/.ssh/tova-%C" in argv  # one handshake per 10 min
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_SSH_COMMAND", "GIT_SSH", "TOVA_SSH_CONFIG")}
    res = subprocess.run(
        ["git", "-C", str(project), "ls-remote", "prod"], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 0, res.stderr


def test_cannot_resolve_hint_names_the_ssh_config():
    from tova.client.failures import from_ssh_failure

    err = from_ssh_failure(
        "tova-testserver", 255, "ssh: Could not resolve hostname tova-testserver: Name or service not known"
    )
    assert "TOVA_SSH_CONFIG" in err.hint and "core.sshCommand" in err.hint


def test_setup_git_second_run_reports_everything_in_place(set_up, capsys):
    capsys.readouterr()
    assert commands.cmd_setup_git(set_up["project"], set_up["manifest"], offline=True) == 0
    out = capsys.readouterr().out
    assert f"Setting up git deployment on {set_up['server'].target}..." in out
    assert f"Toolkit {tova.__version__} already installed" in out
    assert "already in place" in out and "Installing toolkit" not in out
    assert 'Git remote "prod" already in place' in out
    assert "Done. You can now deploy with:\n    git push prod main" in out


def test_setup_git_updates_a_toolkit_whose_files_differ(set_up, capsys, monkeypatch):
    """Same version number, other code (a development checkout): reinstalled, not kept."""
    from tova.client import bootstrap

    monkeypatch.setattr(bootstrap, "package_fingerprint", lambda: "0" * 64)
    capsys.readouterr()
    assert commands.cmd_setup_git(set_up["project"], set_up["manifest"], offline=True) == 0
    out = capsys.readouterr().out
    assert f"Updating toolkit {tova.__version__} (this client's files differ)" in out
    monkeypatch.undo()
    assert commands.cmd_setup_git(set_up["project"], set_up["manifest"], offline=True) == 0
    assert f"Toolkit {tova.__version__} already installed" in capsys.readouterr().out


def test_setup_git_leaves_a_foreign_remote_alone(set_up, tmp_path, capsys):
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(set_up["project"]), str(other)], check=True)
    subprocess.run(["git", "-C", str(other), "remote", "add", "prod", "git@elsewhere:x.git"], check=True)
    commands.cmd_setup_git(other, set_up["manifest"], offline=True)
    assert "points to git@elsewhere:x.git; left as is" in capsys.readouterr().out
    url = subprocess.run(
        ["git", "-C", str(other), "remote", "get-url", "prod"], capture_output=True, text=True
    ).stdout.strip()
    assert url == "git@elsewhere:x.git"


def test_env_set_list_unset_with_hostile_values(set_up, capsys):
    w = set_up
    m = w["manifest"]
    items = [f"{k}={v}" for k, v in HOSTILE.items()]
    assert commands.cmd_env(w["project"], m, "set", items) == 0
    printed = capsys.readouterr().out
    for v in HOSTILE.values():
        assert v not in printed  # values are never echoed
    assert not Path("/tmp/tova-env-pwned").exists()
    env_file = (w["root"] / "apps/myapp/.env.production").read_text()
    assert "k=v=w" in env_file and "a value with spaces" in env_file
    assert commands.cmd_env(w["project"], m, "list", ["--json"]) == 0
    names = json.loads(capsys.readouterr().out)["names"]
    assert set(HOSTILE) <= set(names)
    assert commands.cmd_env(w["project"], m, "unset", ["SUBST", "HASH"]) == 0
    commands.cmd_env(w["project"], m, "list", [])
    listed = capsys.readouterr().out.split()
    assert "SUBST" not in listed and "SPACES" in listed


def test_env_set_rejects_bad_names_without_echoing(set_up):
    # A secret typed without its name (not a valid NAME) is refused and never echoed. A bare
    # valid NAME is a name, asked for at a hidden prompt (`set KEY`), so it may be named.
    with pytest.raises(TovaError) as e:
        commands.cmd_env(set_up["project"], set_up["manifest"], "set", ["hunter2!s3cret"])
    assert "hunter2" not in str(e.value) and "s3cret" not in str(e.value)
    with pytest.raises(TovaError):
        commands.cmd_env(set_up["project"], set_up["manifest"], "set", ["BAD-NAME=x"])


def test_missing_secret_is_asked_for_hidden_on_a_tty(set_up, monkeypatch, capsys):
    from dataclasses import replace as dc_replace

    m = dc_replace(set_up["manifest"], secrets=Secrets(required=("PROMPTED_SECRET",)))
    prompts = []
    monkeypatch.setattr(commands, "_is_tty", lambda: True)
    monkeypatch.setattr(commands.getpass, "getpass", lambda prompt: prompts.append(prompt) or "t0p s3cret=#'\"")
    with commands._server(m) as server:
        commands.ensure_secrets(server, m)
    out = capsys.readouterr()
    assert prompts == ["      PROMPTED_SECRET: "]
    assert "1 secret configured" in out.out and "t0p s3cret" not in out.out + out.err
    commands.cmd_env(set_up["project"], m, "list", [])
    assert "PROMPTED_SECRET" in capsys.readouterr().out.split()
    env_file = set_up["root"] / "apps" / m.app / ".env.production"
    assert "t0p s3cret" in env_file.read_text()  # stored, exactly once
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    commands.cmd_env(set_up["project"], m, "unset", ["PROMPTED_SECRET"])


def test_deploy_without_tty_lists_missing_secrets(set_up, monkeypatch):
    monkeypatch.setattr(commands, "_is_tty", lambda: False)
    with pytest.raises(MissingSecretsError) as e:
        commands.cmd_deploy(set_up["project"], set_up["manifest"], yes=False)
    assert e.value.exit_code == 3 and "tova env prod set JWT_SECRET=..." in e.value.hint


def test_without_tty_missing_secrets_come_from_tova_secret_variables(set_up, monkeypatch, capsys):
    """CI: TOVA_SECRET_<NAME> in the environment sets a missing secret, never prompting."""
    from dataclasses import replace as dc_replace

    m = dc_replace(set_up["manifest"], secrets=Secrets(required=("CI_TOKEN",)))
    monkeypatch.setattr(commands, "_is_tty", lambda: False)
    monkeypatch.setattr(commands.getpass, "getpass", lambda prompt: pytest.fail("prompted"))
    monkeypatch.setenv("CI_TOKEN", "not this one")
    with commands._server(m) as server:
        with pytest.raises(MissingSecretsError):
            commands.ensure_secrets(server, m)  # a same-named variable is not taken
        monkeypatch.setenv("TOVA_SECRET_CI_TOKEN", "from ci")
        commands.ensure_secrets(server, m)
    assert "from ci" not in capsys.readouterr().out
    env_file = set_up["root"] / "apps" / m.app / ".env.production"
    assert "CI_TOKEN=" in env_file.read_text() and "from ci" in env_file.read_text()
    commands.cmd_env(set_up["project"], m, "unset", ["CI_TOKEN"])


def test_remove_refuses_without_tty_or_yes(set_up, monkeypatch):
    monkeypatch.setattr(commands, "_is_tty", lambda: False)
    with pytest.raises(TovaError) as e:
        commands.cmd_remove(set_up["project"], set_up["manifest"], yes=False)
    assert "--yes" in e.value.hint
    assert (set_up["root"] / "apps/myapp/repo.git").is_dir()


EXAMPLE = Path(__file__).parent.parent / "examples" / "minimal"


def test_plan_before_any_deploy_says_every_layer_runs(set_up):
    view = commands.cmd_plan_remote(set_up["project"], set_up["manifest"])
    assert view["contacted"] and view["deployed_version"] is None
    text = commands.format_plan_remote(view).splitlines()
    assert text[0] == "Not deployed yet: every layer runs"
    # This machine's RAM from the probe; the first provisioning line when something is missing.
    m = set_up["manifest"]
    assert view["memory"]["total"] > 0 and view["memory"]["this_app"] == m.instances * m.memory_bytes
    first = view["first_provisioning"]
    assert first is None or text[1] == first["line"]
    # The server's toolchain and TLS mode, as they are there (not as the plan assumes).
    assert "Server: Tova compiler 0.11.26, Bun 1.4.5, TLS automatic HTTPS" in text


def test_deploy_push_then_redeploy_status_and_list(set_up, capsys):
    """Real `git push` over ssh into the temp root's bare repo; the server's hook deploys
    (LocalSystem, fixture compiler); a second deploy of the same commit goes through
    `tova-release deploy --rev`."""
    import shutil

    w = set_up
    if not (Path(tova.__file__).parent / "server" / "cli.py").exists():
        pytest.skip("server side not available")
    (w["root"] / "config.toml").write_text(f'compiler = "{FIXTURE_COMPILER}"\n')
    project = w["project"]
    shutil.copytree(EXAMPLE, project, dirs_exist_ok=True)
    toml = project / "tova.toml"  # the app is named after the project: make it ours
    toml.write_text(toml.read_text().replace('name = "minimal"', 'name = "myapp"'))
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "app"], check=True)
    m = w["manifest"]
    commands.cmd_env(project, m, "set", ["JWT_SECRET=s3cret value"])
    capsys.readouterr()
    rc = commands.cmd_deploy(project, m, yes=True)
    out = capsys.readouterr()
    head = subprocess.run([*git, "rev-parse", "main"], capture_output=True, text=True).stdout.strip()
    pushed = subprocess.run(
        ["git", "--git-dir", str(w["root"] / "apps/myapp/repo.git"), "rev-parse", "main"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert pushed == head
    assert rc == 0, out.out + out.err
    rc2 = commands.cmd_deploy(project, m, yes=True)
    out2 = capsys.readouterr()
    assert "redeploying it" in out2.out and rc2 == 0, out2.out + out2.err
    assert commands.cmd_status(project, m, json=True) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["commit"] == head
    assert commands.cmd_list(m.server, json=False) == 0
    assert "myapp" in capsys.readouterr().out
    # plan against the server: a code-only change since the deployed commit
    (project / "src" / "app.tova").write_text((project / "src" / "app.tova").read_text() + "\n// a comment\n")
    subprocess.run([*git, "commit", "-q", "-am", "code only"], check=True)
    from dataclasses import replace as dc_replace

    from tova.loader import load_manifest

    local = dc_replace(load_manifest(project, "prod"), server=m.server)  # the project's own manifest
    view = commands.cmd_plan_remote(project, local)
    assert view["contacted"] and view["deployed_commit"] == head
    assert view["changed_layers"] == [] and view["app_files_changed"] == 1
    text = commands.format_plan_remote(view)
    assert "No changes from last deploy:" in text and "Changed: app bundle (1 file" in text
    # rollback through the client: back to the release before the redeploy
    releases_before = status["version"]
    assert commands.cmd_rollback(project, m, to=None) == 0
    capsys.readouterr()
    assert commands.cmd_status(project, m, json=True) == 0
    assert json.loads(capsys.readouterr().out)["version"] != releases_before
    # remove: stops the instances (no process left behind) and archives the data
    assert commands.cmd_remove(project, m, yes=True) == 0
    assert 'Removed (data archived, not deleted)' in capsys.readouterr().out
    assert not (w["root"] / "apps/myapp/current").exists()


_LOGS_DRIVER = """
import resource, sys
from tova.client import commands
from tova.manifest import Manifest
m = Manifest(env="prod", app=sys.argv[2], project=sys.argv[2], server=sys.argv[1], domain="myapp.test")
code = commands.cmd_logs(None, m, since=None, instance=None, follow="--follow" in sys.argv)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def test_logs_stream_without_keeping_output_and_end_when_the_reader_does(set_up, tmp_path):
    """`--logs | head -1` ends at once (it used to hang), and a long log passes through
    without being held in the client's memory (as with --follow)."""
    import os
    import sys
    import time

    w = set_up
    port = 45999
    # An app of its own: the deploys of earlier tests may still be retiring myapp's old
    # instances in the background, and they rewrite myapp's registry entry.
    app = "logs-app"
    (w["root"] / "apps" / app).mkdir(parents=True, exist_ok=True)
    reg = w["root"] / "registry.json"
    data = json.loads(reg.read_text()) if reg.exists() else {"apps": {}, "next_port": 3000}
    data["apps"].setdefault(app, {}).update({"ports": [port]})
    reg.write_text(json.dumps(data))
    log = w["root"] / "run" / app / f"{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    line = b"x" * 1023 + b"\n"
    env = dict(os.environ, PYTHONPATH=str(Path(tova.__file__).parent.parent))
    driver = [sys.executable, "-c", _LOGS_DRIVER, w["manifest"].server, app]

    def max_rss_kb() -> int:
        run = subprocess.run(driver, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        assert run.returncode == 0, run.stderr
        return int(run.stderr.decode().strip().splitlines()[-1])

    try:
        # The client's own size varies by machine (Python build, transparent huge pages):
        # measure it with a one-line log, then see that a 64 MB log adds next to nothing.
        log.write_bytes(line)
        baseline_kb = max_rss_kb()
        with open(log, "wb") as fh:
            for _ in range(64 * 1024):  # 64 MB
                fh.write(line)
        start = time.monotonic()
        head = subprocess.run(f"{subprocess.list2cmdline(driver)} | head -1", shell=True, env=env,
                              capture_output=True, timeout=120, executable="/bin/bash")
        assert head.stdout == line and time.monotonic() - start < 60
        grown_kb = max_rss_kb() - baseline_kb
        assert grown_kb < 16 * 1024, f"the client grew by {grown_kb} kB for a 64 MB log"
    finally:
        log.unlink()
        (w["root"] / "apps" / app).rmdir()
        data = json.loads(reg.read_text())
        data["apps"].pop(app, None)
        reg.write_text(json.dumps(data))
