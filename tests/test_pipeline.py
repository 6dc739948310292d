"""The deploy pipeline end to end on this machine: a real bare repo with the installed hook,
a real `git push`, the LocalSystem adapter and real app processes on loopback ports."""

from __future__ import annotations

import json
import re

from tova.server import envfile, upstreams
from tova.server.local_system import LocalSystem


def _provision_runs(site):
    return LocalSystem(site.layout).provision_runs()


def test_first_push_deploys_then_app_only_change(site):
    site.write_app("hello v1")
    site.commit("one")
    res = site.push()
    assert res.returncode == 0, res.stderr
    out = res.stderr  # git shows the hook's output as "remote:" lines on stderr
    assert "[tova] Received push to main" in out
    assert "Live at https://myapp.example.com (v1)" in out, out
    ports = site.ports()
    assert len(ports) == 2 and ports[0] == site.first_port
    assert all(site.get(p) == (200, "hello v1") for p in ports)
    assert _provision_runs(site)[-1]["layers"] == ["system", "databases", "app", "secrets", "proxy", "services"]
    assert site.current() == "v1"
    # The production layout: server.js imports the hashed bundle beside it.
    bundle = re.fullmatch(r'import "\./(server\.[0-9a-f]{12}\.js)";\n', (site.app.current / "server.js").read_text())
    assert bundle and (site.app.current / bundle.group(1)).is_file()
    meta = json.loads((site.app.current / ".tova-manifest.json").read_text())
    assert meta["commit"] == site.git("rev-parse", "HEAD").stdout.strip()
    assert meta["branch"] == "main" and meta["app"] == "myapp"

    site.write_app("hello v2")
    site.commit("two")
    # Python reports every import of both hooks (on stderr, so in the push's output).
    res = site.push(extra_env={"PYTHONPROFILEIMPORTTIME": "1"})
    out = res.stderr
    assert "→ Infrastructure: no changes" in out, out
    # A code-only push renders nothing: neither hook imports the renderer (jinja2, ~20 ms
    # of the push before its build), nor argparse (the hooks' commands take no arguments).
    imported = {line.rsplit("|", 1)[1].strip() for line in out.splitlines() if "import time:" in line}
    assert "tova.server.pipeline" in imported and "tova.server.precheck" in imported
    assert not {"tova.render", "jinja2", "argparse"} & imported
    assert "→ App: 1 file changed" in out
    assert "Live at https://myapp.example.com (v2)" in out
    assert len(_provision_runs(site)) == 1  # no layer ran
    # The new instances started beside the old ones, on ports of their own; the old ones
    # stopped once Caddy was pointed at the new ones (without a reload).
    new = site.ports()
    assert len(new) == 2 and not set(new) & set(ports)
    assert all(site.get(p) == (200, "hello v2") for p in new)
    assert all(site.get(p)[0] == 0 for p in ports)
    assert upstreams.read(site.layout.upstreams_dir, "myapp") == new
    assert not (site.layout.run_dir / "proxy-reloads").exists()
    history = [json.loads(line) for line in site.app.history.read_text().splitlines()]
    assert [h["outcome"] for h in history] == ["ok", "ok"]
    assert history[1]["infra_changed"] == []
    # Every run also reaches the journal (LocalSystem's stand-in file), without colour.
    journal = (site.layout.run_dir / "journal.log").read_text()
    assert "tova-deploy: [tova] Received push to main" in journal
    assert "Live at https://myapp.example.com (v2)" in journal and "\033[" not in journal


def test_failed_health_check_rolls_back(site):
    site.write_app("good")
    site.commit()
    assert "(v1)" in site.push().stderr
    serving, pids = site.ports(), site.pids()
    site.write_app("broken", health="broken")
    site.commit()
    out = site.push().stderr
    assert "Health check /healthz..." in out and "FAILED" in out, out
    # Decided by the answers, not by the start-up deadline.
    assert "HTTP 500 3 times in a row" in out
    assert "⚠ Health check failed, rolling back..." in out
    assert "current → releases/v1 (was v2)" in out
    # The old instances never stopped: rolling back restarts nothing.
    assert "v1 kept serving throughout: nothing to restart" in out
    assert site.ports() == serving and site.pids() == pids
    assert upstreams.read(site.layout.upstreams_dir, "myapp") == serving
    assert "✗ Deploy failed. Rolled back to v1." in out
    assert "Run `tova deploy prod --logs` to investigate." in out
    assert site.current() == "v1"
    assert (site.app.releases / "v2" / ".tova-failed").exists()
    assert all(site.get(p) == (200, "good") for p in site.ports())
    rel = json.loads(site.release("releases", "--json", check=True).stdout)["releases"]
    assert [(r["version"], r["status"]) for r in rel] == [("v2", "failed"), ("v1", "current")]
    # the next good push is v3: numbers are never reused
    site.write_app("fixed")
    site.commit()
    assert "(v3)" in site.push().stderr
    assert all(site.get(p) == (200, "fixed") for p in site.ports())


def test_release_crashing_at_start_says_why(site):
    site.write_app("good")
    site.commit()
    assert "(v1)" in site.push().stderr
    serving, pids = site.ports(), site.pids()
    site.write_app("crashes", marker="// fixture: crash\n")
    site.commit()
    out = site.push().stderr
    assert "process exited" in out, out
    # The failing instance's last lines come before the rollback.
    reason = out.index("fixture: crashing on purpose")
    assert out.index("Last lines of tova-myapp@") < reason < out.index("rolling back")
    assert site.current() == "v1" and site.ports() == serving and site.pids() == pids
    assert all(site.get(p) == (200, "good") for p in serving)


def test_first_deploy_failing_has_nothing_to_roll_back(site):
    site.write_app("broken", health="broken", instances=1)
    site.commit()
    out = site.push().stderr
    assert "Nothing to roll back to" in out, out
    assert site.current() is None
    assert not site.app.current.exists()
    assert site.ports() == [] and site.pids() == {}


def test_build_failure_changes_nothing(site):
    site.write_app("v1")
    site.commit()
    site.push()
    before = site.pids()
    site.write_app("v2", marker='server {\n  route GET "/x" =>\n}\n')
    site.commit()
    res = site.push()
    # The compiler's own message reaches the pusher, located relative to the project.
    assert re.search(r"Error in app\.tova: src/app\.tova:2:\d+ — Parse error", res.stderr), res.stderr
    assert "/build/deploy-" not in res.stderr
    assert "the build failed" in res.stderr
    assert site.current() == "v1"
    assert site.pids() == before
    assert sorted(p.name for p in site.app.releases.iterdir()) == ["v1"]
    assert not any(site.app.build_dir.iterdir()) if site.app.build_dir.exists() else True


def test_other_refs_are_ignored(site):
    site.write_app("v1")
    site.commit()
    site.git("checkout", "-q", "-b", "feature")
    res = site.push("feature")
    assert "Not deploying feature: the prod deploy block deploys branch main" in res.stderr
    site.git("tag", "t1")
    res = site.push("refs/tags/t1")
    assert "Ignoring refs/tags/t1: only pushes to a branch deploy" in res.stderr
    res = site.push(":feature")
    assert "Ignoring deletion of refs/heads/feature" in res.stderr
    assert site.current() is None


def test_missing_secret_stops_then_env_set_and_deploy(site):
    site.write_app("v1", extra='security {\n  auth jwt { secret: env("JWT_SECRET") }\n}\n')
    site.commit()
    res = site.push()
    assert res.returncode != 0  # rejected by the pre-receive check: the branch did not move
    assert "missing required secrets: JWT_SECRET" in res.stderr, res.stderr
    assert "tova env prod set JWT_SECRET=..." in res.stderr
    assert site.current() is None
    value = 'a b="c" #d $e `f` \\g'
    r = site.release("env", "myapp", "set", stdin=json.dumps({"JWT_SECRET": value}))
    assert r.returncode == 0, r.stderr
    assert value not in r.stdout + r.stderr  # never printed
    assert json.loads(site.release("env", "myapp", "list", "--json").stdout) == {"names": ["JWT_SECRET"]}
    r = site.push()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(v1)" in r.stderr
    assert all(site.get(p, "/__env/JWT_SECRET") == (200, value) for p in site.ports())
    # set again through KEY=VALUE: instances restart and see the new value
    site.release("env", "myapp", "set", "JWT_SECRET=second", check=True)
    assert all(site.get(p, "/__env/JWT_SECRET") == (200, "second") for p in site.ports())
    assert envfile.read(site.app.env_file) == {"JWT_SECRET": "second"}


def test_instance_count_changes_start_new_beside_old(site):
    site.write_app("v1", instances=2)
    site.commit()
    site.push()
    first = site.ports()
    site.write_app("v1", instances=3)
    site.commit()
    out = site.push().stderr
    assert "Infrastructure: proxy, services" in out, out
    second = site.ports()
    assert len(second) == 3 and not set(second) & set(first), out
    assert all(site.get(p) == (200, "v1") for p in second)
    site.write_app("v1", instances=1)
    site.commit()
    site.push()
    assert len(site.ports()) == 1
    assert all(site.get(p)[0] == 0 for p in first + second if p not in site.ports())  # the old ones stopped



def test_repository_is_packed_once_pushes_gathered_loose_objects(site):
    from tova.server.repack import count_objects

    site.write_app("hello v1")
    for push in range(3):  # 40 new files a push: git keeps each push's objects loose
        public = site.work / "public"
        public.mkdir(exist_ok=True)
        for i in range(40):
            (public / f"p{push}-{i}.txt").write_text(f"{push} {i}\n")
        site.commit(f"push {push}")
        res = site.push()
        assert res.returncode == 0 and "Live at" in res.stderr, res.stderr
        if push < 2:
            assert "Packed the repository" not in res.stderr
            assert count_objects(site.app.repo).loose > 0
    assert "Packed the repository" in res.stderr
    counts = count_objects(site.app.repo)
    assert counts.loose == 0 and counts.packs == 1
    fsck = site.git("--git-dir", str(site.app.repo), "fsck", "--no-dangling")
    assert fsck.returncode == 0, fsck.stderr
    site.write_app("hello v4")
    site.commit("after packing")
    res = site.push()
    assert "Live at https://myapp.example.com (v4)" in res.stderr, res.stderr
    assert all(site.get(p) == (200, "hello v4") for p in site.ports())


def test_a_changed_server_setting_reprovisions_its_layer(site):
    """tls in config.toml is part of change detection: the next deploy reruns the proxy layer."""
    site.write_app("v1")
    site.commit("one")
    assert site.push().returncode == 0
    # What --plan asks first: the tls in force, the layer a changed config.toml provisions.
    status = json.loads(site.release("status", "myapp", "--json", extra_env={"TOVA_TLS": "internal"},
                                     check=True).stdout)
    assert status["settings"]["tls"] == "auto" and status["settings_changed"] == ["proxy"]
    assert status["toolchain"]["compiler"] == "0.11.26" and status["toolchain"]["bun"]
    site.write_app("v2")
    site.commit("two")
    res = site.push(extra_env={"TOVA_TLS": "internal"})
    assert "→ Infrastructure: proxy" in res.stderr, res.stderr
    assert _provision_runs(site)[-1]["layers"] == ["proxy"]


def test_a_site_from_before_tova_upstreams_is_provisioned_again(site):
    """A server provisioned when Caddy's site listed the ports: the next push, even a
    code-only one, runs the proxy layer, since the rollout moves the app to new ports."""
    site.write_app("v1")
    site.commit()
    assert "(v1)" in site.push().stderr
    caddy_site = site.layout.caddy_app("myapp")
    caddy_site.parent.mkdir(parents=True, exist_ok=True)
    caddy_site.write_text('myapp.example.com {\n\treverse_proxy "127.0.0.1:3000" "127.0.0.1:3001"\n}\n')
    site.write_app("v2")
    site.commit()
    out = site.push().stderr
    assert "Infrastructure: proxy" in out, out
    assert _provision_runs(site)[-1]["layers"] == ["proxy"]


def test_a_new_app_skips_the_system_layer_another_app_ran(site):
    site.write_app("hello v1")
    site.commit("one")
    assert "Live at" in site.push().stderr
    assert _provision_runs(site)[-1]["layers"][0] == "system"

    def fresh_app(extra_env=None):
        site.release("remove", "myapp", "--yes", check=True)
        site.release("init", "myapp", "--env", "prod", check=True)
        return site.push(extra_env=extra_env).stderr

    out = fresh_app()  # a first deploy again, on a server whose system layer ran
    assert "System: provisioned already" in out and "Live at" in out, out
    assert _provision_runs(site)[-1]["layers"] == ["databases", "app", "secrets", "proxy", "services"]
    out = fresh_app({"TOVA_BUN_ARCHIVE_URL": "https://example.invalid/bun.zip"})  # other settings: it runs
    assert "System: provisioned already" not in out and "Live at" in out, out
    assert _provision_runs(site)[-1]["layers"][0] == "system"
