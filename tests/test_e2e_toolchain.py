"""Issue 11 point 1 on a freshly reset test server, the online path (no --setup-git, no
upload): the first `tova deploy` sets the server up and puts Bun and the developer's
compiler version there through `compiler_install` before the first build. Here
compiler_install copies from a folder on the server laid out like the compiler's release
downloads (v<version>/tova-linux-<arch>), holding the fixture compiler: the test server
reaches no download site. When the developer's compiler moves on, the plan warns,
`--setup-git` records the new version and the next build installs it first; a version
compiler_install cannot provide stops every deploy before anything is built or switched."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_support  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import FIXTURE_COMPILER, SERVER_SETTINGS, Https, Project, check, fetch_ca, server_addr  # noqa: E402

pytestmark = pytest.mark.e2e

e2e_support.skip_module_without_test_server()

RELEASES = "/srv/tova-releases"
INSTALL = f'install -m 0755 "{RELEASES}/v$TOVA_VERSION/tova-linux-$TOVA_ARCH" "$TOVA_COMPILER_DIR/tova"'


def publish(config: Path, version: str) -> None:
    """A "release binary" of the fixture that says it is `version`, for x64 and arm64."""
    wrapper = f'#!/bin/sh\nTOVA_FIXTURE_VERSION={version} exec {RELEASES}/fixture "$@"\n'
    for arch in ("x64", "arm64"):
        check(ts.ssh(f"mkdir -p {RELEASES}/v{version} && cat > {RELEASES}/v{version}/tova-linux-{arch}",
                     input=wrapper, config=config), f"publishing {version}")


def test_the_first_tova_deploy_installs_the_developers_compiler_and_follows_it(tmp_path):
    config = ts.reset()
    settings = SERVER_SETTINGS + f"compiler_install = {json.dumps(INSTALL)}\n"
    check(ts.ssh("mkdir -p /opt/tova && cat > /opt/tova/config.toml", input=settings, config=config), "settings")
    check(ts.ssh(f"mkdir -p {RELEASES} && cat > {RELEASES}/fixture && chmod 0755 {RELEASES}/fixture",
                 input=FIXTURE_COMPILER.read_text(), config=config), "the fixture")
    publish(config, "0.11.26")
    publish(config, "0.11.27")
    env = {**ts.ssh_env(config), "TOVA_NO_COLOR": "1", "NO_COLOR": "1", "TOVA_COMPILER": str(FIXTURE_COMPILER)}

    def developer(version: str) -> Project:
        project.env = {**env, "TOVA_FIXTURE_VERSION": version}  # `tova --version` here
        return project

    project = Project.create("jot", tmp_path / "jot", env)
    res = developer("0.11.26").tova("deploy", "prod")
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "First deploy: setting up the server" in out, out
    assert "Bun 1.4.5, Tova compiler 0.11.26" in out and "Live at https://jot.tova.test (v1)" in out, out
    assert ts.ssh("cat /opt/tova/compiler/version; /opt/tova/compiler/tova --version",
                  config=config).stdout.split() == ["0.11.26", "Tova", "v0.11.26"]
    web = Https(server_addr(config), fetch_ca(config, tmp_path / "ca.crt"))
    assert web.get("jot.tova.test", "/") == (200, "jot v1")

    # The developer's compiler moves on: the plan says so; --setup-git makes builds use it.
    plan = developer("0.11.27").tova("deploy", "prod", "--plan")
    assert "⚠ the server's Tova compiler is 0.11.26, yours 0.11.27" in plan.stdout, plan.stdout + plan.stderr
    res = project.tova("deploy", "prod", "--setup-git")
    assert res.returncode == 0 and "Tova compiler 0.11.27" in res.stdout, res.stdout + res.stderr
    project.edit("src/app.tova", '"jot v1"', '"jot v2"')
    project.commit("v2")
    res = project.tova("deploy", "prod")
    assert res.returncode == 0 and "Live at https://jot.tova.test (v2)" in res.stdout + res.stderr
    status = project.tova("deploy", "prod", "--status").stdout
    assert "Built with:   Tova compiler 0.11.27, Bun 1.4.5" in status, status

    # A version compiler_install cannot provide: every deploy stops before building.
    res = developer("0.11.28").tova("deploy", "prod", "--setup-git")
    assert res.returncode != 0 and "the build toolchain is not ready" in res.stdout + res.stderr
    project.edit("src/app.tova", '"jot v2"', '"jot v3"')
    project.commit("v3")
    res = project.tova("deploy", "prod")
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "the build toolchain is not ready" in out, out
    assert "Compiling .tova files" not in out
    assert web.get("jot.tova.test", "/") == (200, "jot v2")  # v2 kept serving, untouched
    # Once the release exists, the same push deploys.
    publish(config, "0.11.28")
    res = project.tova("deploy", "prod")
    assert res.returncode == 0 and "Live at https://jot.tova.test (v3)" in res.stdout + res.stderr
    assert web.get("jot.tova.test", "/") == (200, "jot v3")
