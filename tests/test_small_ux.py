"""Issue 14 point 7: the small things a new user met on the way."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tova.client.failures import toolkit_missing
from tova.client.screens import status_screen

NOW = time.time()


def _status(**extra):
    base = {"app": "myapp", "domain": "myapp.tova.test", "version": "v1", "instances": [],
            "releases_kept": 1, "keep_releases": 5}
    return status_screen({**base, **extra}, now=NOW)


def test_status_of_a_failed_first_deploy_says_the_step_and_the_reason():
    text = _status(version=None, last_deploy={"outcome": "failed", "step": "build", "end": NOW,
                                              "error": "the build failed (compiler exit status 1)"})
    assert "failed at step build: the build failed (compiler exit status 1)" in text


def test_status_of_a_real_failed_first_deploy(site):
    """The same from a first deploy that really failed (a compile error), through
    `tova-release status --json` as the client gets it."""
    import json

    site.write_app("v1")
    src = site.work / "src" / "app.tova"
    src.write_text(src.read_text().replace("fn home() {", "fn home() { for x in [1] { x }\n", 1))
    site.commit("broken")
    assert "the build failed" in site.push().stderr
    status = json.loads(site.release("status", "myapp", "--json", check=True).stdout)
    text = status_screen(status, now=NOW)
    assert "failed at step build: the build failed (compiler exit status 1)" in text, text


def test_a_short_lived_certificate_shows_hours_not_zero_days():
    expires = datetime.fromtimestamp(NOW, UTC) + timedelta(hours=11, minutes=40)
    text = _status(certificate={"domain": "myapp.tova.test", "state": "valid", "days_left": 0,
                                "expires": expires.isoformat()})
    assert "(12 hours)" in text and "0 days" not in text
    long = _status(certificate={"domain": "myapp.tova.test", "state": "valid", "days_left": 89,
                                "expires": (expires + timedelta(days=89)).isoformat()})
    assert "(89 days)" in long


def test_status_without_a_certificate_says_so_and_why():
    text = _status(certificate=None)
    assert "SSL:" in text and "no certificate yet" in text and "first HTTPS" in text
    assert "SSL:" not in _status(certificate=None, version=None)  # nothing deployed: nothing to say


def test_hints_never_print_a_literal_env_placeholder():
    hint = toolkit_missing("h", "prod").hint or ""
    assert "<env>" not in hint and "tova deploy prod --setup-git" in hint
    assert "<env>" not in (toolkit_missing("h", None).hint or "")


def test_server_hints_name_the_environment_they_know(monkeypatch, tmp_path):
    """A build's toolchain failure and the pre-receive check know the environment: their
    remedy names it (no `<env>` or `ENV` for the user to fill in)."""
    import pytest

    from tova.client.remote import release_error
    from tova.client.ssh import Result
    from tova.errors import DeployError
    from tova.server import toolchain
    from tova.server.precheck import compiler_problem
    from tova.settings import ServerSettings

    settings = ServerSettings(root=str(tmp_path), compiler="tova", compiler_install="")
    monkeypatch.setattr(toolchain, "inspect", lambda s: toolchain.Toolchain(None, None, ("Bun is missing",)))
    monkeypatch.setattr(toolchain, "run_tool", lambda *a, **k: 1)
    with pytest.raises(DeployError) as failed:
        toolchain.ensure(settings, lambda text: None, env="staging")
    hints = [failed.value.hint or "", (compiler_problem(settings, lambda n: None, env="staging") or failed.value).hint]
    for hint in hints:
        assert "tova deploy staging --setup-git --compiler PATH" in (hint or ""), hint
        assert "<env>" not in (hint or "") and "ENV" not in (hint or "")
    # `tova-release toolchain` (run by --setup-git) does not know it: the client fills it in
    with pytest.raises(DeployError) as unnamed:
        toolchain.ensure(settings, lambda text: None)
    shown = release_error(Result(1, b"", f"error: x\nhint: {unnamed.value.hint}\n".encode()), env="prod")
    assert "tova deploy prod --setup-git --compiler PATH" in (shown.hint or "")


def test_env_set_says_it_restarts_and_rollback_says_what_it_restores(site):
    site.write_app("v1")
    site.commit()
    site.push()
    site.write_app("v2")
    site.commit()
    site.push()
    res = site.release("env", "myapp", "set", "GREETING=hi", check=True)
    assert "Set GREETING" in res.stdout and "Starting new instances with the new values" in res.stdout
    res = site.release("rollback", "myapp", check=True)
    assert "its build and its health, env and proxy settings" in res.stdout
    assert "the instance count, data/, secrets and databases stay as they are" in res.stdout


def test_env_set_before_any_deploy_says_nothing_restarted(site):
    res = site.release("env", "myapp", "set", "GREETING=hi", check=True)
    assert "Not deployed yet: the next deploy starts the app with these values" in res.stdout


def _shell_function(script: str, name: str) -> str:
    import re

    m = re.search(rf"^{name}\(\) {{.*?^}}$", script, re.S | re.M)
    assert m, name
    return m.group(0)


def test_package_installation_names_each_package_as_it_goes(tmp_path):
    """Issue 14 point 8: a first provisioning shows apt's progress one package at a time."""
    import subprocess

    from tova.manifest import Manifest
    from tova.render import render_all
    from tova.settings import ServerSettings

    script = render_all(Manifest(env="prod", app="a", project="a", server="root@h", domain="a.example.com"),
                        [3000], ServerSettings())["provision.sh"]
    funcs = _shell_function(script, "apt_quiet") + "\n" + _shell_function(script, "apt_install")
    fake = tmp_path / "apt-get"
    fake.write_text('#!/bin/sh\n[ "$1" = clean ] && exit 0\n'
                    'echo "Reading package lists..."\necho "Unpacking caddy (2.6.2-5) ..."\n'
                    'echo "Setting up caddy (2.6.2-5) ..."\necho "Setting up ufw (0.36.2-1) ..."\n'
                    '[ "$FAIL" = 1 ] && { echo "E: broken"; exit 100; }\nexit 0\n')
    fake.chmod(0o755)
    run = ["bash", "-c", f"set -Eeuo pipefail\n{funcs}\napt_install caddy ufw"]
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    ok = subprocess.run(run, capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and ok.stdout == "    setting up caddy\n    setting up ufw\n", ok
    bad = subprocess.run(run, capture_output=True, text=True, env={**env, "FAIL": "1"})
    assert bad.returncode == 100 and "E: broken" in bad.stderr and "Reading package lists" in bad.stderr


def test_toolchain_installation_names_each_package_as_it_goes(tmp_path):
    """Issue 14 point 8: nodejs and npm (for Bun), installed by toolchain.sh before the first
    build (a minute or more on a fresh server), progress like provisioning does."""
    import subprocess

    from tova.render import render_toolchain
    from tova.settings import ServerSettings

    script = render_toolchain(ServerSettings())
    funcs = "\n".join(_shell_function(script, f) for f in ("apt_quiet", "apt_install", "apt_needs"))
    fake = tmp_path / "apt-get"
    # npm brings about 400 packages: the ones asked for and every 25th are named, counted
    names = [f"node-dep{i}:amd64" for i in range(1, 61)]
    names[6], names[59] = "nodejs", "npm"
    fake.write_text('#!/bin/sh\n[ "$1" = install ] || exit 0\n'
                    'echo "0 upgraded, 60 newly installed, 0 to remove and 0 not upgraded."\n'
                    + "".join(f'echo "Setting up {n} (1.0) ..."\n' for n in names))
    fake.chmod(0o755)
    run = ["bash", "-c", f"set -Eeuo pipefail\n{funcs}\napt_needs no-such-command-here nodejs npm\n"
                         "apt_needs bash bash"]
    res = subprocess.run(run, capture_output=True, text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "  installing nodejs npm...", "    setting up nodejs (7 of 60)", "    setting up node-dep25:amd64 (25 of 60)",
        "    setting up node-dep50:amd64 (50 of 60)", "    setting up npm (60 of 60)"]
    assert "installing Bun" in script  # and Bun's own npm install says so before it starts


def test_setup_git_times_its_slow_steps_and_shows_the_servers_progress(monkeypatch, capsys):
    """Issue 14 point 8: the client's slow --setup-git steps print their line first, the
    server's progress under it as it comes, then their time."""
    from pathlib import Path

    from tova.client import bootstrap
    from tova.progress import client_steps

    class Server:
        def release_json(self, args, stdin=None, progress=None):
            assert progress is not None
            progress("  installing nodejs npm...\n")
            progress("    setting up nodejs\n")
            return {"bun": "1.4.5", "compiler": "0.11.26"}

    monkeypatch.setattr(bootstrap, "local_compiler_version", lambda: None)
    monkeypatch.setattr(bootstrap, "compiler_archive", lambda path: ("tova", b""))
    steps = client_steps()
    ticks = iter([0.0, 52.0])
    steps.clock = lambda: next(ticks)
    lines = bootstrap.toolchain_lines(Server(), Path("tova"), steps)  # type: ignore[arg-type]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("    → Bun and the Tova compiler (uploading it)") and "✓" not in out[0]
    assert out[1:3] == ["    installing nodejs npm...", "      setting up nodejs"]
    assert out[3].startswith("      → done") and out[3].endswith("✓ 52s")
    assert lines == ["    → Bun 1.4.5, Tova compiler 0.11.26 (uploaded)"]


def test_testserver_up_prints_the_readme_steps_with_its_own_paths(tmp_path):
    """Issue 14 point 2: `testserver up` ends with the exact next commands for one's own
    project, the same as the README's test-server steps; the settings are one file."""
    import importlib.machinery
    import importlib.util
    import re
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    loader = importlib.machinery.SourceFileLoader("testserver_cli_ux", str(repo / "vagrant" / "testserver"))
    spec = importlib.util.spec_from_loader("testserver_cli_ux", loader)
    assert spec is not None
    cli = importlib.util.module_from_spec(spec)
    sys.modules["testserver_cli_ux"] = cli
    loader.exec_module(cli)
    paths = cli.Paths(tmp_path / "inst", tmp_path)
    paths.cache.mkdir()
    cli.save_state(paths, {"address": "10.213.9.2"})
    text = cli.next_steps(paths)
    assert f"export TOVA_SSH_CONFIG={paths.ssh_config}" in text
    assert f"--compiler {repo / 'tests' / 'fixtures' / 'tova-fixture-compiler'}" in text
    assert "--resolve myapp.tova.test:443:10.213.9.2 https://myapp.tova.test/" in text
    readme = (repo / "README.md").read_text()
    block = re.search(r"<!-- test-server-steps[^>]*-->\n```bash\n(.*?)```", readme, re.S)
    assert block
    for command in ("tova deploy prod --plan", "tova deploy prod --setup-git --compiler", "git push prod main",
                    "testserver ssh cat /var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"):
        assert command in text and command in block.group(1), command
    assert 'tls = "internal"' in (repo / "vagrant" / "tova-testserver.toml").read_text()


def test_setup_git_shows_the_uploaded_compiler_in_line_with_the_servers_progress(monkeypatch, capsys, tmp_path):
    """`tova-release toolchain --upload ... --json` (the real handler, its stderr) as the
    client's --setup-git prints it: the upload's line sits with the toolchain's lines."""
    import io
    import sys
    from pathlib import Path

    from tova.client import bootstrap
    from tova.layout import Layout
    from tova.progress import Out, client_steps
    from tova.server import cli, toolchain
    from tova.settings import ServerSettings

    def ensure(settings, passthrough, env="ENV"):
        passthrough("Toolchain: Bun 1.4.5 is not installed\n")
        passthrough("  installing nodejs npm...\n")
        return toolchain.Toolchain("1.4.5", "0.11.26", ())

    monkeypatch.setattr(toolchain, "install_upload", lambda settings, data, entry: None)
    monkeypatch.setattr(toolchain, "ensure", ensure)
    monkeypatch.setattr(toolchain, "record_version", lambda settings, version: None)
    monkeypatch.setattr(cli, "load_settings", lambda: ServerSettings(root=str(tmp_path)))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    progress = io.StringIO()
    session = cli.Session(ServerSettings(root=str(tmp_path)), Layout.of(str(tmp_path)), Out(progress, color=False))
    args = cli.build_parser().parse_args(["toolchain", "--upload", "tova", "--json"])
    assert cli.cmd_toolchain(args, session) == 0
    capsys.readouterr()

    class Server:
        def release_json(self, args, stdin=None, progress=None):
            for line in progress_lines:
                progress(line)
            return {"bun": "1.4.5", "compiler": "0.11.26"}

    progress_lines = progress.getvalue().splitlines(keepends=True)
    monkeypatch.setattr(bootstrap, "local_compiler_version", lambda: None)
    monkeypatch.setattr(bootstrap, "compiler_archive", lambda path: ("tova", b""))
    bootstrap.toolchain_lines(Server(), Path("tova"), client_steps())  # type: ignore[arg-type]
    out = capsys.readouterr().out.splitlines()
    assert out[1:4] == [f"    Uploaded the Tova compiler to {tmp_path}/compiler/tova",
                        "    Toolchain: Bun 1.4.5 is not installed", "      installing nodejs npm..."], out
