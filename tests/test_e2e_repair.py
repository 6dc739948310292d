"""Issue 13, point 13, on the real Debian test server: a deploy SIGKILLed while it restarts
the instances leaves old and new instances running side by side (mixed versions) and a
registry that disagrees with `current`. The next `tova-release` command repairs it and
says what it found; with no command at all, the health watcher does.

Uses the running test server as it is (booted if needed, not reset) and removes its app."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_support  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import SETUP_GIT, World, check, configure_server  # noqa: E402
from test_attack_e2e import new_project  # noqa: E402

pytestmark = pytest.mark.e2e

e2e_support.skip_module_without_test_server()

APP = "mended"
HOOK = f"/opt/tova/apps/{APP}/repo.git/hooks/post-receive"


def _handler(body: str) -> str:
    return f'  fn home() {{ text("{body}") }}\n  route GET "/" => home\n'


def _state(w: World) -> tuple[dict, str, dict[int, str]]:
    """The registry entry, `current`, and every running instance unit's port with what it answers."""
    entry = json.loads(w.ok("cat /opt/tova/registry.json"))["apps"][APP]
    current = w.ok(f"readlink /opt/tova/apps/{APP}/current").strip().rsplit("/", 1)[-1]
    units = w.ok(f"systemctl list-units --state=active --plain --no-legend 'tova-{APP}@*.service' "
                 "| cut -d' ' -f1").split()
    ports = sorted(int(u.split("@")[1].split(".")[0]) for u in units)
    answers = {p: w.ssh(f"curl -sS --max-time 3 http://127.0.0.1:{p}/").stdout for p in ports}
    return entry, current, answers


def _push_killed(w: World, body: str, point: str) -> None:
    """Commit a new version, push it without deploying, then deploy it as the hook would,
    SIGKILLed at `point` of its rollout."""
    p = w.projects[APP]
    src = p.dir / "src" / "app.tova"
    text = src.read_text()
    start = text.index('  fn home()')
    end = text.index("\n", text.index('route GET "/" => home')) + 1
    src.write_text(text[:start] + _handler(body) + text[end:])
    p.commit(body)
    w.ok(f"mv {HOOK} {HOOK}.off")
    try:
        check(p.push(), "push without the hook")
    finally:
        w.ok(f"mv {HOOK}.off {HOOK}")
    res = w.ssh(f"TOVA_FAULT_INJECT={point} tova-release deploy {APP} --rev main")
    # Killed by a signal: ssh reports that as 255.
    assert res.returncode == 255 and "Starting 2 new instances" in res.stdout, (res.returncode, res.stdout)
    assert "Live at" not in res.stdout


def _consistent(w: World, version: str, body: str) -> None:
    entry, current, answers = _state(w)
    assert current == version and entry["version"] == version, (entry, current)
    assert not entry.get("starting") and not entry.get("retiring"), entry
    assert sorted(answers) == sorted(entry["ports"]) and len(answers) == 2, (entry, answers)
    assert set(answers.values()) == {body}, answers
    upstreams = w.ok(f"cat /opt/tova/upstreams/{APP}").split()
    assert sorted(map(int, upstreams)) == sorted(entry["ports"]), upstreams


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    config = ts.ensure_up()
    configure_server(config)
    w = World(config, Path(tempfile.mkdtemp(prefix="e2e-repair-", dir=tmp_path_factory.getbasetemp())))
    # A run that died half-way may have left the app behind: start from none.
    w.ok(f"if [ -d /opt/tova/apps/{APP} ]; then tova-release remove {APP} --yes; fi")
    p = new_project(w, APP, {}, extra=_handler("one"), deploy="  instances: 2\n")
    check(p.tova("deploy", "prod", *SETUP_GIT), "setup-git")
    push = p.push()
    assert f"Live at https://{APP}.tova.test (v1)" in push.stderr, push.stdout + push.stderr
    yield w
    w.ssh("systemctl start tova-health.service")
    p.tova("deploy", "prod", "--remove", "--yes")


def test_the_next_command_repairs_a_deploy_killed_with_old_and_new_instances_up(world):
    w = world
    w.ok("systemctl stop tova-health.service")  # else the watcher repairs it first (next test)
    try:
        _push_killed(w, "two", "upstreams-switched")
        entry, current, answers = _state(w)
        # What the kill left: v2 current and serving, v1 recorded, both versions running.
        assert current == "v2" and entry["version"] == "v1" and entry.get("retiring"), entry
        assert sorted(answers.values()) == ["one", "one", "two", "two"], answers
        status = w.release_json("status", APP)  # the next command, whatever it is
        _consistent(w, "v2", "two")
        r = status["repaired"]
        assert r["outcome"] == "repaired" and r["version"] == "v2", r
        assert "the registry recorded v1 as live but current is v2" in r["found"], r
        assert any(f.startswith("old instances left running on ports") for f in r["found"]), r
        assert status["problems"] == [] and status["version"] == "v2"
        text = w.ok(f"tova-release status {APP}")
        assert "! repaired: found the registry recorded v1 as live but current is v2" in text, text
        history = [json.loads(line) for line in w.ok(f"cat /opt/tova/apps/{APP}/history.jsonl").splitlines()]
        assert history[-1]["outcome"] == "repaired"
        assert w.web().get(f"{APP}.tova.test", "/") == (200, "two")
    finally:
        w.ok("systemctl start tova-health.service")


def test_the_health_watcher_repairs_it_when_no_command_comes(world):
    w = world
    since = w.ok("date +%s").strip()
    _push_killed(w, "three", "instances-started")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        entry, current, answers = _state(w)
        if entry["version"] == "v3" and not entry.get("starting"):
            break
        time.sleep(1)
    _consistent(w, "v3", "three")
    journal = w.ok(f"journalctl -q -o cat -t tova-health --since @{since}")
    assert f"Repairing {APP}" in journal and "New instances left starting" in journal, journal
    assert w.web().get(f"{APP}.tova.test", "/") == (200, "three")
