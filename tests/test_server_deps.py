"""npm dependencies of a release: what to install, the cache per dependency set, links."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tova.errors import DeployError
from tova.layout import Layout
from tova.server import deps
from tova.server.local_system import LocalSystem

COMPILER = Path(__file__).parent / "fixtures" / "tova-fixture-compiler"


def build(project: Path, server: str) -> Path:
    (project / "src").mkdir(parents=True, exist_ok=True)
    (project / "src" / "app.tova").write_text(
        "server {\n" + server + '\n  fn healthz() { text("ok") }\n  route GET "/healthz" => healthz\n}\n')
    out = project.parent / "out"
    subprocess.run([str(COMPILER), "build", "src", "--production", "--output", str(out)], cwd=project,
                   check=True, capture_output=True)
    return out


def test_bundle_imports_of_the_real_driver_code():
    bundle = ('import { AsyncLocalStorage } from "node:async_hooks";\nimport postgres from "postgres";\n'
              'import mysql from "mysql2/promise";\nimport { Database } from "bun:sqlite";\n'
              'import fs from "fs";\nimport x from "./y.js";\nimport { a } from "@scope/pkg/sub";\n'
              "    const __fs = await import('fs');\n")
    assert deps.imported_packages(bundle) == ["postgres", "mysql2", "@scope/pkg"]


def test_postgres_driver_is_added_with_a_default_range(tmp_path):
    project = tmp_path / "p"
    out = build(project, '  db { driver: "postgres" }')
    spec = deps.dependency_spec(project, deps.server_imports(out), "shop", "1.4.5")
    assert spec and spec.packages == ("postgres",) and spec.lockfile is None
    assert json.loads(spec.package_json)["dependencies"] == {"postgres": deps.DRIVER_PACKAGES["postgres"]}


def test_npm_section_of_tova_toml_and_sqlite_needs_nothing(tmp_path):
    project = tmp_path / "p"
    out = build(project, '  db { path: "app.db" }')
    assert deps.dependency_spec(project, deps.server_imports(out), "blog", "1.4.5") is None
    (project / "tova.toml").write_text('[project]\nname = "blog"\n\n[npm]\nzod = "^3.23.0"\n\n[npm.dev]\nx = "1"\n')
    spec = deps.dependency_spec(project, deps.server_imports(out), "blog", "1.4.5")
    assert spec and spec.packages == ("zod",)
    # The key follows the dependency set and Bun's version, nothing else.
    assert spec.key == deps.dependency_spec(project, deps.server_imports(out), "blog", "1.4.5").key
    assert spec.key != deps.dependency_spec(project, deps.server_imports(out), "blog", "1.4.6").key


def test_a_lockfile_is_frozen_and_must_list_the_driver(tmp_path):
    project = tmp_path / "p"
    out = build(project, '  db { driver: "mysql" }')
    (project / "package.json").write_text('{"name": "x", "dependencies": {"left-pad": "1.3.0"}}')
    (project / "bun.lock").write_text("{}")
    with pytest.raises(DeployError, match="'mysql2', which package.json does not list"):
        deps.dependency_spec(project, deps.server_imports(out), "x", "1.4.5")
    (project / "package.json").write_text('{"name": "x", "dependencies": {"mysql2": "3.11.0"}}')
    spec = deps.dependency_spec(project, deps.server_imports(out), "x", "1.4.5")
    assert spec and spec.lockfile == ("bun.lock", b"{}") and spec.package_json.startswith('{"name": "x"')
    # tova.toml's [npm] (what `tova install` writes package.json from) must agree with it.
    (project / "tova.toml").write_text('[project]\nname = "x"\n\n[npm]\nmysql2 = "3.11.0"\nzod = "^3.23.0"\n')
    with pytest.raises(DeployError, match="lists zod, which package.json"):
        deps.dependency_spec(project, deps.server_imports(out), "x", "1.4.5")
    (project / "tova.toml").write_text('[project]\nname = "x"\n\n[npm]\nmysql2 = "3.11.0"\n')
    (project / "package.json").write_text('{"name": "x", "dependencies": {"mysql2": "3.11.0", "ms": "2.1.3"}}')
    spec = deps.dependency_spec(project, deps.server_imports(out), "x", "1.4.5")
    assert spec and spec.packages == ("ms", "mysql2")  # what the lockfile installs
    (project / "bun.lock").unlink()  # npm's lockfile is honoured too (bun install reads it)
    (project / "package-lock.json").write_text("{}")
    spec = deps.dependency_spec(project, deps.server_imports(out), "x", "1.4.5")
    assert spec and spec.lockfile == ("package-lock.json", b"{}")


def test_install_once_then_reuse_link_and_prune(tmp_path):
    app = Layout.of(tmp_path / "root").app("shop")
    spec = deps.DepSpec('{"dependencies": {"postgres": "^3.4.5"}}', None, ("postgres",), "k1")
    calls = []

    def fake_bun(argv: list[str], cwd: Path) -> int:
        calls.append(argv)
        pkg = cwd / "node_modules" / "postgres"
        pkg.mkdir(parents=True)
        (pkg / "package.json").write_text('{"version": "3.4.5"}')
        return 0

    target, versions, reused = deps.install(spec, app, "/usr/bin/bun", fake_bun, work=tmp_path / "w1")
    assert versions == {"postgres": "3.4.5"} and not reused
    assert calls == [["/usr/bin/bun", "install", "--production", "--ignore-scripts", "--no-progress",
                      "--backend=copyfile"]]
    assert deps.install(spec, app, "/usr/bin/bun", fake_bun, work=tmp_path / "w2")[1:] == ({"postgres": "3.4.5"}, True)
    assert len(calls) == 1  # the second deploy reused it
    release = app.release("v1")
    release.mkdir(parents=True)
    deps.link(release, target)
    assert (release / "node_modules" / "postgres" / "package.json").is_file()
    assert not Path(str((release / "node_modules").readlink())).is_absolute()
    deps.prune(app, set())
    assert not target.exists()


def test_a_failed_install_leaves_no_cache_entry(tmp_path):
    app = Layout.of(tmp_path / "root").app("shop")
    spec = deps.DepSpec('{"dependencies": {"nope": "9"}}', None, ("nope",), "k2")
    with pytest.raises(DeployError, match="bun install exit status 1"):
        deps.install(spec, app, "/usr/bin/bun", lambda argv, cwd: 1, work=tmp_path / "w")
    assert list(app.deps.iterdir()) == []
    assert not (tmp_path / "w").exists()


needs_bun = pytest.mark.skipif(shutil.which("bun") is None, reason="installs with the real `bun install`")


def _lockfile_project(work: Path, vendor: Path, deps: dict[str, str]) -> None:
    """package.json naming a local package (no registry needed) and the bun.lock Bun makes for it."""
    (vendor / "package.json").parent.mkdir(parents=True, exist_ok=True)
    (vendor / "package.json").write_text('{"name": "dep", "version": "1.2.3"}')
    (work / "package.json").write_text(json.dumps({"name": "myapp", "dependencies": {"dep": f"file:{vendor}"}}))
    subprocess.run(["bun", "install", "--lockfile-only", "--no-progress"], cwd=work, check=True,
                   capture_output=True, timeout=120)
    (work / "package.json").write_text(json.dumps({"name": "myapp", "dependencies": deps}))


@needs_bun
def test_a_lockfile_that_package_json_outgrew_fails_the_deploy_before_anything_switches(site):
    """The lockfile is honoured (frozen): one that no longer matches package.json stops the
    deploy at the dependencies step with Bun's own message; v1 keeps serving untouched."""
    site.write_app("v1")
    site.commit("one")
    assert site.push().returncode == 0
    before, runs = site.pids(), len(LocalSystem(site.layout).provision_runs())
    vendor = site.work.parent / "vendor" / "dep"
    _lockfile_project(site.work, vendor, {"dep": f"file:{vendor}", "left-pad": "1.3.0"})
    site.write_app("v2")
    site.commit("two")
    res = site.push()
    assert "lockfile had changes, but lockfile is frozen" in res.stderr, res.stderr  # the installer's message
    assert "installing the npm dependencies failed" in res.stderr
    assert site.current() == "v1" and site.pids() == before
    assert len(LocalSystem(site.layout).provision_runs()) == runs  # nothing provisioned either
    assert sorted(p.name for p in site.app.releases.iterdir()) == ["v1"]
    assert not site.app.deps.exists() or list(site.app.deps.iterdir()) == []
    last = json.loads(site.app.history.read_text().splitlines()[-1])
    assert (last["outcome"], last["step"]) == ("failed", "dependencies")


@needs_bun
def test_a_browser_block_bundles_a_declared_npm_package(site):
    """tova.toml's [npm] is installed before the compiler runs, so a browser block's import
    of it resolves and is bundled into the client script; the release still links the
    installed set for the server, and a code-only redeploy reuses both."""
    vendor = site.work.parent / "vendor" / "tinydep"
    vendor.mkdir(parents=True)
    (vendor / "package.json").write_text('{"name": "tinydep", "version": "1.0.7", "main": "index.js"}')
    (vendor / "index.js").write_text('export const shout = (s) => "TINYDEP:" + s;\n')
    browser = 'browser {\n  import { shout } from "tinydep"\n  component App {\n    <h1>"x"</h1>\n  }\n}\n'
    (site.work / "tova.toml").write_text(
        f'[project]\nname = "myapp"\nentry = "src"\n\n[npm]\ntinydep = "file:{vendor}"\n')
    site.write_app("v1", extra=browser)
    site.commit("one")
    res = site.push()
    assert res.returncode == 0 and site.current() == "v1", res.stderr
    release = site.app.releases / "v1"
    scripts = list((release / "static" / ".tova-out").glob("client.*.js"))
    assert scripts and all("TINYDEP:" in p.read_text() for p in scripts)
    assert json.loads((release / "node_modules" / "tinydep" / "package.json").read_text())["version"] == "1.0.7"
    assert not (site.work / "node_modules").exists()
    site.write_app("v2", extra=browser)
    site.commit("two")
    res = site.push()
    assert res.returncode == 0 and site.current() == "v2", res.stderr
    assert "Dependencies unchanged: tinydep 1.0.7" in res.stderr, res.stderr
    # One set, and its copy for the build; nothing of the build's link is left behind.
    names = sorted(p.name for p in site.app.deps.iterdir())
    assert len(names) == 2 and names[1] == names[0] + deps.BUILD_SUFFIX, names
