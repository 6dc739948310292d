"""SIGKILL the pipeline right before each step (TOVA_FAULT_INJECT) and check that the
server is left consistent and the next deploy succeeds."""

from __future__ import annotations

import json

import pytest
from release_harness import Site

from tova.server import envfile
from tova.server.pipeline import STEPS

SECRET = {"API_TOKEN": 'x y="z" #1'}


def _check_consistent(site: Site, deployed_before: bool) -> None:
    app = site.app
    if app.current.is_symlink():
        target = app.current.resolve()
        assert target.parent == app.releases.resolve() and target.name.startswith("v")
        assert (target / "server.js").exists()
        meta = json.loads((target / ".tova-manifest.json").read_text())
        assert meta["app"] == "myapp" and meta["commit"]
    else:
        assert not deployed_before, "current vanished after a successful deploy"
    if site.layout.registry.exists():
        data = json.loads(site.layout.registry.read_text())
        assert set(data["apps"]) <= {"myapp"}
        ports = [p for a in data["apps"].values() for p in a["ports"]]
        assert len(ports) == len(set(ports))
    assert envfile.read(app.env_file) == SECRET


# The two steps that flip state (the release directory, the `current` link) stay in the quick
# loop; every step runs in the e2e stage (each case is four real deploys).
QUICK = {"release", "switch"}


@pytest.mark.parametrize("step", [s if s in QUICK else pytest.param(s, marks=pytest.mark.e2e) for s in STEPS])
def test_crash_before_step_leaves_a_consistent_server(site, step):
    site.release("env", "myapp", "set", stdin=json.dumps(SECRET), check=True)
    # 1. a crash during the very first deploy
    site.write_app("first")
    site.commit()
    res = site.push(extra_env={"TOVA_FAULT_INJECT": step})
    assert "Live at" not in res.stderr  # it really died
    _check_consistent(site, deployed_before=False)
    r = site.release("deploy", "myapp", "--rev", "main")
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(site.get(p) == (200, "first") for p in site.ports())
    # 2. a crash during a later deploy
    site.write_app("second")
    site.commit()
    res = site.push(extra_env={"TOVA_FAULT_INJECT": step})
    assert "Live at" not in res.stderr
    _check_consistent(site, deployed_before=True)
    r = site.release("deploy", "myapp", "--rev", "main")  # not blocked by a stale lock
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(site.get(p) == (200, "second") for p in site.ports())
    versions = [p.name for p in site.app.releases.iterdir()]
    assert all(v.startswith("v") for v in versions), versions  # no half-built leftovers
