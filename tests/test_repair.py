"""Issue 13, point 13: a deploy, rollback or env change SIGKILLed while it restarts the
instances leaves mixed versions and a registry that disagrees with `current`; the next
`tova-release` command, deploy or health-watcher tick repairs it (tova.server.repair), and
status says what was found and done. The decision logic on a hand-made temp root, then
real deploys killed at each point of the rollout (TOVA_FAULT_INJECT)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from release_harness import LIVE_V1, STARTUP_DEADLINE, Site

from tova.layout import Layout
from tova.server.local_system import LocalSystem
from tova.server.repair import diagnose
from tova.server.watchdog import Watcher
from tova.settings import ServerSettings

# --- diagnose: pure decisions on a temp root -------------------------------------------


def _app(tmp_path: Path, current: str | None, *existing: str):
    app = Layout.of(tmp_path).app("shop")
    for v in existing:
        (app.releases / v).mkdir(parents=True)
    app.dir.mkdir(parents=True, exist_ok=True)
    if current:
        app.current.symlink_to(f"releases/{current}")
    return app


def test_a_consistent_app_needs_nothing(tmp_path):
    app = _app(tmp_path, "v2", "v1", "v2")
    assert diagnose(app, {"version": "v2", "ports": [3000, 3001]}) is None


@pytest.mark.parametrize("entry, found", [
    ({"version": "v1", "ports": [3000]}, ["the registry recorded v1 as live but current is v2"]),
    ({"ports": []}, ["the registry recorded no release as live but current is v2"]),
    ({"version": "v2", "ports": [3000], "starting": [3002, 3003]},
     ["new instances left starting on ports 3002, 3003"]),
    ({"version": "v1", "ports": [3002], "retiring": [3000]},
     ["the registry recorded v1 as live but current is v2", "old instances left running on port 3000"]),
    # A port both serving and listed in flight is not a leftover.
    ({"version": "v2", "ports": [3000], "retiring": [3000]}, None),
])
def test_what_an_interrupted_rollout_left_is_found(tmp_path, entry, found):
    d = diagnose(_app(tmp_path, "v2", "v1", "v2"), entry)
    assert (d and list(d.found)) == found
    if d:
        assert d.current == "v2" and d.recorded == entry.get("version")


@pytest.mark.parametrize("current, existing", [
    (None, ("v1",)),  # never deployed, or stopped after a first deploy failed
    ("v2", ("v1",)),  # current's release deleted by hand: status names it, nothing to roll onto
])
def test_no_complete_release_to_come_back_to_is_left_to_status(tmp_path, current, existing):
    assert diagnose(_app(tmp_path, current, *existing), {"version": "v1", "ports": [3000]}) is None


def test_a_directory_in_place_of_current_is_not_repaired(tmp_path):
    app = _app(tmp_path, None, "v1")
    app.current.mkdir()
    assert diagnose(app, {"version": "v1", "ports": [3000]}) is None


# --- real deploys killed in the middle of the rollout ----------------------------------


def _registry(site: Site) -> dict:
    return json.loads(site.layout.registry.read_text())["apps"]["myapp"]


def _history(site: Site) -> list[dict]:
    return [json.loads(line) for line in site.app.history.read_text().splitlines() if line]


def _running(site: Site) -> dict[int, str]:
    """Every instance process alive under the root, and what it answers."""
    system = LocalSystem(site.layout)
    return {port: site.get(port)[1] for port in site.pids() if system.instance_running(site.app, port)}


def _killed_while_restarting(site: Site, point: str, health: str = "healthy") -> dict:
    """v1 live, then a push of v2 SIGKILLed at `point` of its rollout."""
    site.write_app("v1")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    site.write_app("v2", health=health)
    site.commit("v2")
    res = site.push(extra_env={"TOVA_FAULT_INJECT": point})
    assert "Live at" not in res.stderr  # it really died
    return _registry(site)


def _assert_repaired_onto_v2(site: Site) -> None:
    entry = _registry(site)
    assert site.current() == "v2" and entry["version"] == "v2"
    assert not entry.get("starting") and not entry.get("retiring")
    assert _running(site) == {p: "v2" for p in entry["ports"]}  # only v2, only the recorded ones
    assert len(entry["ports"]) == 2
    last = _history(site)[-1]
    assert last["outcome"] == "repaired" and last["version"] == "v2", last


def test_killed_after_starting_new_instances_status_repairs_and_says_so(site):
    entry = _killed_while_restarting(site, "instances-started")
    # Left: v1 serving and recorded, v2's new instances running unrecorded beside it.
    assert entry["version"] == "v1" and entry["starting"]
    assert sorted(_running(site).values()) == ["v1", "v1", "v2", "v2"]
    st = json.loads(site.release("status", "myapp", "--json", check=True).stdout)
    _assert_repaired_onto_v2(site)
    assert st["problems"] == [] and st["version"] == "v2"
    assert "the registry recorded v1 as live but current is v2" in st["repaired"]["found"]
    assert any("new instances left starting" in f for f in st["repaired"]["found"])
    text = site.release("status", "myapp", check=True).stdout
    assert "! repaired: found the registry recorded v1 as live but current is v2" in text, text


def test_killed_with_old_and_new_instances_both_up_any_command_repairs(site):
    entry = _killed_while_restarting(site, "upstreams-switched")
    # Mixed versions: the new v2 instances serve, the old v1 ones still run.
    assert entry["version"] == "v1" and entry["retiring"]
    assert sorted(_running(site).values()) == ["v1", "v1", "v2", "v2"]
    out = site.release("releases", "myapp", check=True).stdout
    assert "Repairing myapp" in out and "Old instances left running" in out, out
    _assert_repaired_onto_v2(site)


def test_killed_before_the_restart_the_next_deploy_repairs_first(site):
    _killed_while_restarting(site, "restart")
    assert sorted(_running(site).values()) == ["v1", "v1"]  # current is v2, v1 serves
    site.write_app("v3")
    site.commit("v3")
    out = site.push().stderr
    assert "Repairing myapp" in out and "(v3)" in out, out
    outcomes = [r["outcome"] for r in _history(site)]
    assert outcomes[-2:] == ["repaired", "ok"], outcomes
    assert sorted(_running(site).values()) == ["v3", "v3"]


def test_a_release_that_fails_its_check_on_repair_gives_way_to_the_recorded_one(site):
    _killed_while_restarting(site, "instances-started", health="broken")
    st = json.loads(site.release("status", "myapp", "--json", check=True).stdout)
    entry = _registry(site)
    assert site.current() == "v1" and entry["version"] == "v1"
    assert _running(site) == {p: "v1" for p in entry["ports"]}
    assert (site.app.release("v2") / ".tova-failed").exists()
    r = st["repaired"]
    assert r["outcome"] == "repair_failed" and r["version"] == "v1"
    assert any(d.startswith("v2 failed its health check") for d in r["done"]), r
    assert "current back to v1, serving again" in r["done"]


def test_a_first_deploy_killed_while_starting_is_started_by_the_next_command(site):
    site.write_app("v1")
    site.commit()
    assert "Live at" not in site.push(extra_env={"TOVA_FAULT_INJECT": "instances-started"}).stderr
    assert _registry(site)["ports"] == [] and site.current() == "v1"
    site.release("apps", check=True)
    entry = _registry(site)
    assert entry["version"] == "v1" and _running(site) == {p: "v1" for p in entry["ports"]}


def test_the_health_watcher_repairs_without_any_command(site):
    _killed_while_restarting(site, "upstreams-switched")
    logged: list[str] = []
    settings = ServerSettings(root=str(site.root), first_port=site.first_port, startup_deadline=STARTUP_DEADLINE,
                              lock_wait=5)
    watcher = Watcher(site.layout, LocalSystem(site.layout), settings, log=logged.append)
    watcher.tick()
    _assert_repaired_onto_v2(site)
    assert any("Repairing myapp" in line for line in logged), logged
    logged.clear()
    watcher.tick()  # consistent now: nothing more
    assert not any("Repair" in line for line in logged), logged


def test_an_env_change_killed_mid_restart_is_finished_with_the_new_values(site):
    site.write_app("v1")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    res = site.release("env", "myapp", "set", "DEBUG=1", extra_env={"TOVA_FAULT_INJECT": "upstreams-switched"})
    assert res.returncode != 0
    assert len(_running(site)) == 4  # old and new instances
    site.release("status", "myapp", check=True)
    entry = _registry(site)
    assert entry["version"] == "v1" and not entry.get("retiring")
    assert sorted(_running(site)) == sorted(entry["ports"])
    assert _history(site)[-1]["outcome"] == "repaired"


def test_a_rollback_killed_after_moving_current_is_provisioned_for_its_release(site):
    site.write_app("v1", instances=2)
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    site.write_app("v2", instances=3)  # the services and proxy layers differ
    site.commit("v2")
    assert "(v2)" in (out := site.push().stderr) and "Live at" in out, out
    system = LocalSystem(site.layout)
    runs = len(system.provision_runs())
    res = site.release("rollback", "myapp", extra_env={"TOVA_FAULT_INJECT": "current-flipped"})
    assert res.returncode != 0 and site.current() == "v1"
    assert len(system.provision_runs()) == runs  # killed before provisioning v1's settings
    site.release("status", "myapp", check=True)
    later = system.provision_runs()[runs:]
    assert [r["layers"] for r in later] == [["proxy", "services"]], later
    entry = _registry(site)
    assert entry["version"] == "v1" and len(entry["ports"]) == 2
    assert _running(site) == {p: "v1" for p in entry["ports"]}
    assert _history(site)[-1]["outcome"] == "repaired"


def test_a_held_deploy_lock_means_work_in_progress_not_a_repair(site):
    from tova.server.locks import deploy_lock

    _killed_while_restarting(site, "restart")
    with deploy_lock(site.app, 1, what="deploy"):
        st = json.loads(site.release("status", "myapp", "--json", check=True).stdout)
    assert st["repaired"] is None
    assert st["problems"] == ["the registry recorded v1 as live but current is v2 "
                              "(an interrupted change, repaired once the deploy lock is free)"]
    assert _registry(site)["version"] == "v1"
