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


def test_hints_are_worded_for_the_client_that_asked(site):
    """Run by the client (which says the environment and how it reached the server), a
    remedy that is a server command shows the ssh command that runs it, and `ENV` is the
    environment's name; run on the server by hand, the same hint stays as it is. The
    rewrite happens here because a rollback's output is streamed to the user unchanged."""
    from tova import remedies

    bare = site.release("rollback", "myapp")
    assert bare.returncode != 0 and "hint: list them with: tova-release releases myapp" in bare.stderr
    told = {remedies.CALLER_ENV: "staging", remedies.CALLER_SSH: "ssh -p 2222 deploy@10.0.0.5"}
    asked = site.release("rollback", "myapp", extra_env=told)
    assert "hint: list them with: ssh -p 2222 deploy@10.0.0.5 tova-release releases myapp" in asked.stderr
    assert remedies.for_caller("set it up with: tova deploy ENV --setup-git", "staging", None) == \
        "set it up with: tova deploy staging --setup-git"
    # a path or another word ending in tova-release is not a command of its own
    assert remedies.for_caller("see /usr/local/bin/tova-release --help", None, "ssh h") == \
        "see /usr/local/bin/tova-release --help"


def test_the_client_tells_tova_release_who_asks():
    from tova import remedies
    from tova.client.remote import Server
    from tova.client.ssh import Target

    server = Server(Target.parse("deploy@10.0.0.5:2222"), env_name="prod")
    assert server.caller() == [f"{remedies.CALLER_SSH}=ssh -p 2222 deploy@10.0.0.5", f"{remedies.CALLER_ENV}=prod"]
    assert Server(Target.parse("box"), env_name=None).caller() == [f"{remedies.CALLER_SSH}=ssh box"]
