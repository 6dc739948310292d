"""A project without tova.toml deploys (issue 9, point 4), on the local test server.

Its app name comes from the project folder on the developer's machine and is recorded with
the server's repository at --setup-git; the server checks out into a folder called `src`
and must not name the app after it. The app also keeps its code in a sub-folder
(src/pages/home.tova), which the build and the reader both read (point 2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_support  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import SETUP_GIT, Https, Project, configure_server, fetch_ca, server_addr  # noqa: E402

pytestmark = pytest.mark.e2e

DOMAIN = "plain.tova.test"

e2e_support.skip_module_without_test_server()


def test_project_without_tova_toml_deploys(tmp_path):
    config = ts.reset()
    configure_server(config)
    env = {**ts.ssh_env(config), "TOVA_NO_COLOR": "1", "NO_COLOR": "1"}
    project = Project.create("plainapp", tmp_path / "plainapp", env)
    assert not (project.dir / "tova.toml").exists()
    plan = project.tova("deploy", "prod", "--plan", "--local")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "plainapp" in plan.stdout and "SQLite (plain.db)" in plan.stdout
    setup = project.tova("deploy", "prod", *SETUP_GIT)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    push = project.push("prod", "main")
    out = push.stdout + push.stderr
    assert push.returncode == 0, out
    assert "'src'" not in out and f"Live at https://{DOMAIN}" in out, out
    status = ts.ssh("tova-release status plainapp --json", config=config)
    assert status.returncode == 0 and '"app": "plainapp"' in status.stdout, status.stdout + status.stderr
    web = Https(server_addr(config), fetch_ca(config, tmp_path / "ca.crt"))
    assert web.get(DOMAIN, "/") == (200, "plain v1")
