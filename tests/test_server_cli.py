"""`tova-release` subcommands as the client calls them: exit codes, JSON shapes, errors on
stderr without tracebacks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import tova
from tova.server.locks import deploy_lock


def _json(res):
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_version_and_usage_errors(site):
    from tova.fingerprint import package_fingerprint

    assert _json(site.release("version", "--json")) == {"version": tova.__version__,
                                                         "fingerprint": package_fingerprint()}
    r = site.release("frobnicate")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "\nhint: " in r.stderr


def test_init_is_idempotent_and_installs_the_hook(site):
    data = _json(site.release("init", "myapp", "--env", "prod", "--json"))
    assert data == {"app": "myapp", "env": "prod", "repo": str(site.app.repo),
                    "created": False, "hook_installed": False}
    hook = site.app.repo / "hooks" / "post-receive"
    assert os.access(hook, os.X_OK)
    r = site.release("init", "myapp", "--env", "staging")
    assert r.returncode == 2 and "already set up for environment 'prod'" in r.stderr
    r = site.release("init", "Bad_Name", "--env", "prod")
    assert r.returncode == 2 and "invalid app name" in r.stderr


def test_releases_status_apps_rollback_remove(site):
    site.write_app("one")
    site.commit()
    site.push()
    site.write_app("two")
    c2 = site.commit()
    site.push()
    rel = _json(site.release("releases", "myapp", "--json"))["releases"]
    assert [(r["version"], r["status"]) for r in rel] == [("v2", "current"), ("v1", "ok")]
    assert rel[0]["commit"] == c2
    st = _json(site.release("status", "--json"))  # the only app is implied
    assert st["app"] == "myapp" and st["version"] == "v2" and st["ports"] == site.ports()
    assert st["manifest"]["domain"] == "myapp.example.com"
    assert [i["state"] for i in st["instances"]] == ["active", "active"]
    assert st["last_deploy"]["outcome"] == "ok" and st["releases_kept"] == 2
    apps = _json(site.release("apps", "--json"))
    assert apps["apps"][0]["app"] == "myapp" and apps["apps"][0]["state"] == "running"
    # Per app: memory used by its instances and their limit, disk under its directory.
    row = apps["apps"][0]
    assert row["memory_bytes"] > 1024**2 and row["memory_limit_bytes"] == 2 * st["manifest"]["memory_bytes"]
    assert row["disk_bytes"] >= sum(f.stat().st_size for f in site.app.releases.rglob("*") if f.is_file())
    assert set(apps["services"]) == {"postgresql", "redis", "caddy"}

    r = site.release("rollback", "myapp")
    assert r.returncode == 0, r.stderr
    assert "current → releases/v1 (was v2)" in r.stdout and "✓ Rolled back to v1" in r.stdout
    assert site.current() == "v1"
    assert all(site.get(p) == (200, "one") for p in site.ports())
    assert json.loads(site.layout.registry.read_text())["apps"]["myapp"]["version"] == "v1"
    r = site.release("rollback", "myapp", "--to", "v1")
    assert r.returncode == 2 and "already the current release" in r.stderr
    r = site.release("rollback", "myapp", "--to", "v2", "--json")
    assert _json(r) == {"version": "v2"}

    r = site.release("env", "myapp", "unset", "NOPE")
    assert r.returncode == 0 and "nothing" in r.stdout
    logs = site.release("logs", "myapp", "--instance", "1")
    assert "Tova server running on" in logs.stdout

    ports = site.ports()
    r = site.release("remove", "myapp")
    assert r.returncode == 2 and "--yes" in r.stderr
    data = _json(site.release("remove", "myapp", "--yes", "--json"))
    assert data["ports_freed"] == ports
    archive = Path(data["archive"])
    assert archive.parent == site.layout.archive_dir / "myapp"  # archive/<app>/<timestamp>/
    assert (archive / "app" / ".env.production").exists()
    assert json.loads(site.layout.registry.read_text())["apps"] == {}
    assert all(site.get(p)[0] == 0 for p in ports)
    r = site.release("status", "myapp")
    assert r.returncode == 5 and "no app 'myapp'" in r.stderr


def test_locked_app_exits_4_naming_the_holder(site):
    site.write_app("one")
    site.commit()
    with deploy_lock(site.app, 1, what="test"):
        push = site.push(extra_env={"TOVA_LOCK_WAIT": "0.2"})
        r = site.release("deploy", "myapp", "--rev", "main", extra_env={"TOVA_LOCK_WAIT": "0.2"})
    assert r.returncode == 4, r.stderr
    assert f"pid {os.getpid()}" in r.stderr and "Traceback" not in r.stderr
    assert "myapp is locked by pid" in push.stderr and site.current() is None
    r = site.release("deploy", "myapp", "--rev", "main")  # the lock is gone with its holder
    assert r.returncode == 0, r.stderr


def test_env_set_rejects_bad_input_without_echoing(site):
    r = site.release("env", "myapp", "set", stdin="not json")
    assert r.returncode == 2 and "JSON" in r.stderr
    r = site.release("env", "myapp", "set", stdin=json.dumps({"1BAD": "secret-value"}))
    assert r.returncode == 2 and "secret-value" not in r.stderr


def test_one_handler_per_subcommand():
    from tova.server import cli as release_cli

    parser = release_cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    assert set(sub.choices) == set(release_cli.HANDLERS) | {"version"}
