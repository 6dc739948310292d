"""End-to-end scenarios (issue 6 §3) on the local Debian test server (vagrant/testserver).

One freshly reset server for the whole module; the scenarios run in file order and build
on each other (as a user's server would): through the real `tova` client, real sshd and a
real `git push`; Bun, Caddy, UFW, PostgreSQL and Redis are installed by provisioning; pages
are fetched over HTTPS through Caddy with its local CA. Only the Tova compiler is a fixture
(tests/fixtures/tova-fixture-compiler): no registry offers it.

Skipped, with the reason, where the test server cannot run (not root, no systemd-nspawn),
or when TOVA_SKIP_E2E=1."""

from __future__ import annotations

import json
import re
import shlex
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_support  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import SETUP_GIT, Https, Project, World, check, configure_server  # noqa: E402

pytestmark = pytest.mark.e2e

SHOP = "shop.tova.test"
NOTES = "notes.tova.test"
STAGING = "staging.notes.tova.test"


e2e_support.skip_module_without_test_server()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    config = ts.reset()
    configure_server(config)
    return World(config, tmp_path_factory.mktemp("e2e"))


def deploy_new(world: World, fixture: str, env_name: str = "prod", refspec: str = "main") -> tuple[Project, str]:
    project = world.projects.get(fixture) or Project.create(fixture, world.tmp / fixture, world.env)
    world.projects[fixture] = project
    setup = project.tova("deploy", env_name, *SETUP_GIT)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert f"git push {env_name}" in setup.stdout
    push = project.push(env_name, refspec)
    out = push.stdout + push.stderr
    assert push.returncode == 0, out
    return project, out


def distinct_ok(web: Https, domain: str, path: str, n: int = 6) -> set[str]:
    """Bodies of n GETs (round-robin reaches every instance); every one must be a 200."""
    bodies = set()
    for _ in range(n):
        status, body = web.get(domain, path)
        assert status == 200, (status, body)
        bodies.add(body)
    return bodies


# --------------------------------------------------------------------- scenarios

def test_1_first_deploy_installs_everything_and_serves_https(world):
    shop, out = deploy_new(world, "shop")
    assert "Infrastructure: system, databases, app, secrets, proxy, services (first deploy)" in out
    assert "Live at https://shop.tova.test (v1)" in out
    # Real software, installed by provisioning, running.
    world.ok("command -v bun caddy ufw psql redis-server")
    assert world.ok("/usr/local/bin/bun --version").strip()
    for service in ("caddy", "postgresql", "redis-server@tova-shop"):
        assert world.ok(f"systemctl is-active {service}").strip() == "active"
    assert "Status: active" in world.ok("ufw status")
    status = world.release_json("status", "shop")
    assert len(status["ports"]) == 2 and [i["state"] for i in status["instances"]] == ["active", "active"]
    web = world.web()
    assert distinct_ok(web, SHOP, "/") == {"shop v1"}
    # The app reads DATABASE_URL and REDIS_URL and uses both.
    env = world.env_file("shop")
    assert env["DATABASE_URL"].startswith("postgresql://tova_shop:")
    assert env["REDIS_URL"] == "redis+unix:///run/redis-tova-shop/redis.sock"  # its own Redis
    assert distinct_ok(web, SHOP, "/__db") == {"db ok 1"}
    assert distinct_ok(web, SHOP, "/__redis?value=first") == {"shop:key=first"}
    assert world.ok("runuser -u tova-shop -- redis-cli -s /run/redis-tova-shop/redis.sock GET shop:key"
                    ).strip() == "first"
    # WebSocket upgrade and an SSE stream through Caddy.
    assert web.websocket_echo(SHOP, "ping") == ["hello", "echo: ping"]
    ctype, events = web.sse(SHOP, "/events")
    assert ctype.startswith("text/event-stream") and events == ["tick 1", "tick 2", "tick 3"]


def test_2_code_only_push_skips_provisioning(world):
    shop = world.projects["shop"]
    ports = world.release_json("status", "shop")["ports"]
    shop.edit("src/app.tova", '"shop v1"', '"shop v2"')
    shop.commit("v2: new text")
    push = shop.push()
    out = push.stdout + push.stderr
    assert push.returncode == 0, out
    assert "Infrastructure: no changes" in out and "Provisioning" not in out
    assert "Live at https://shop.tova.test (v2)" in out
    status = world.release_json("status", "shop")
    # New instances on ports of their own; the old ones stopped after the switch.
    assert not set(status["ports"]) & set(ports) and status["version"] == "v2"
    assert [i["state"] for i in status["instances"]] == ["active", "active"]
    assert distinct_ok(world.web(), SHOP, "/") == {"shop v2"}
    for port in ports:
        assert world.ssh(f"systemctl is-active --quiet tova-shop@{port}.service").returncode != 0
    # Caddy was pointed at them without a reload.
    assert "Caddy reloaded" not in out


def test_3_adding_redis_runs_only_the_database_layer(world):
    notes, out = deploy_new(world, "notes")
    assert "Live at https://notes.tova.test (v1)" in out
    assert "REDIS_URL" not in world.env_file("notes")
    source = notes.dir / "src" / "app.tova"
    notes.edit("src/app.tova", '"notes v1"', '"notes v2"')
    # Redis is declared in the deploy blocks (the compiler's server `db { }` has no redis).
    source.write_text(source.read_text().replace('memory: "256mb"', 'memory: "256mb"\n  db { redis { } }'))
    notes.commit("add redis")
    push = notes.push()
    out = push.stdout + push.stderr
    assert push.returncode == 0, out
    # Redis was already installed (shop): only the databases layer and the layers that
    # consume what it made (the secrets it adds, the unit that reads them) run.
    infra = re.search(r"Infrastructure: (.*)", out).group(1).strip()
    layers = [x.strip() for x in infra.split(",")]
    assert "databases" in layers and "system" not in layers, infra
    assert set(layers) <= {"databases", "secrets", "services"}, infra
    assert "[system]" not in out and "[proxy]" not in out
    assert ("Redis redis-server@tova-notes.service (socket /run/redis-tova-notes/redis.sock, "
            "maxmemory none): changed") in out
    assert world.env_file("notes")["REDIS_URL"] == "redis+unix:///run/redis-tova-notes/redis.sock"
    web = world.web()
    assert distinct_ok(web, NOTES, "/", 2) == {"notes v2"}
    assert distinct_ok(web, NOTES, "/__redis?value=n1", 2) == {"notes:key=n1"}


def test_4_failed_health_check_rolls_back(world):
    shop = world.projects["shop"]
    shop.edit("src/app.tova", 'route GET "/healthz" => healthz', 'route GET "/healthz" => broken')
    shop.edit("src/app.tova", '"shop v2"', '"shop v3 broken"')
    shop.commit("v3: broken health")
    push = shop.push()
    out = push.stdout + push.stderr
    assert push.returncode == 0, out  # a post-receive hook cannot reject the push
    assert "Health check /healthz..." in out and "FAILED" in out
    assert "Health check failed, rolling back..." in out
    assert "current → releases/v2 (was v3)" in out
    assert "Deploy failed. Rolled back to v2." in out
    assert "tova deploy prod --logs" in out
    assert distinct_ok(world.web(), SHOP, "/") == {"shop v2"}
    releases = {r["version"]: r["status"] for r in world.release_json("releases", "shop")["releases"]}
    assert releases["v3"] == "failed" and releases["v2"] == "current"
    world.ok("test -d /opt/tova/apps/shop/releases/v3")


def test_5_rollback_on_the_server_and_from_the_client(world):
    shop = world.projects["shop"]
    shop.edit("src/app.tova", 'route GET "/healthz" => broken', 'route GET "/healthz" => healthz')
    shop.edit("src/app.tova", '"shop v3 broken"', '"shop v4"')
    shop.commit("v4: fixed")
    push = shop.push()
    assert "Live at https://shop.tova.test (v4)" in push.stdout + push.stderr
    web = world.web()
    assert distinct_ok(web, SHOP, "/") == {"shop v4"}
    # As root on the server: back to the last good release before v4 (v3 failed).
    res = world.ssh("tova-release rollback shop")
    assert res.returncode == 0, res.stdout + res.stderr
    assert distinct_ok(web, SHOP, "/") == {"shop v2"}
    # From the client, to a named release.
    res = shop.tova("deploy", "prod", "--rollback", "--to", "v4")
    assert res.returncode == 0, res.stdout + res.stderr
    assert distinct_ok(web, SHOP, "/") == {"shop v4"}
    assert world.release_json("status", "shop")["version"] == "v4"
    # Plain --rollback: the previous good release.
    res = shop.tova("deploy", "prod", "--rollback")
    assert res.returncode == 0, res.stdout + res.stderr
    assert distinct_ok(web, SHOP, "/") == {"shop v2"}
    res = shop.tova("deploy", "prod", "--rollback", "--to", "v4")
    assert res.returncode == 0, res.stdout + res.stderr


def test_6_apps_and_environments_are_isolated(world):
    _, out = deploy_new(world, "notes", "staging", "main:develop")
    assert "Live at https://staging.notes.tova.test (v1)" in out
    web = world.web()
    assert distinct_ok(web, STAGING, "/", 2) == {"notes v2"}
    apps = {a["app"]: a for a in world.release_json("apps")["apps"]}
    assert {"shop", "notes", "notes-staging"} <= set(apps)
    ports = [p for name in ("shop", "notes", "notes-staging") for p in apps[name]["ports"]]
    assert len(ports) == len(set(ports)) == 4
    users = {name: world.ok(f"stat -c %U /opt/tova/apps/{name}/data").strip() for name in apps if name != "hello"}
    assert users == {"shop": "tova-shop", "notes": "tova-notes", "notes-staging": "tova-notes-staging"}
    shop_env, notes_env = world.env_file("shop"), world.env_file("notes")
    staging_env = world.env_file("notes-staging")
    dbs = {e["DATABASE_URL"].rsplit("/", 1)[1] for e in (shop_env, notes_env, staging_env)}
    assert dbs == {"shop_db", "notes_db", "notes_staging_db"}
    # Files: shop's user cannot read notes' data/ or env file (and can read its own data/).
    world.ok("runuser -u tova-shop -- ls /opt/tova/apps/shop/data")
    for cmd in ("ls /opt/tova/apps/notes/data", "cat /opt/tova/apps/notes/.env.production",
                "cat /opt/tova/apps/notes-staging/.env.production"):
        res = world.ssh(f"runuser -u tova-shop -- {cmd}")
        assert res.returncode != 0 and "Permission denied" in res.stderr, (cmd, res.stdout, res.stderr)
    # PostgreSQL: shop's credentials open shop_db but not notes_db.
    shop_url = shop_env["DATABASE_URL"]
    world.ok(f"psql {shlex.quote(shop_url)} -tAc 'SELECT 1'")
    res = world.ssh(f"psql {shlex.quote(shop_url.rsplit('/', 1)[0] + '/notes_db')} -tAc 'SELECT 1'")
    assert res.returncode != 0 and "permission denied" in res.stderr.lower(), res.stderr
    # Redis: shop's user reaches its own instance, not notes' (notes wrote notes:key in §3).
    cli = "runuser -u tova-shop -- redis-cli -s"
    assert world.ok(f"{cli} /run/redis-tova-shop/redis.sock GET shop:key").strip()
    denied = world.ssh(f"{cli} /run/redis-tova-notes/redis.sock GET notes:key")
    assert "Permission denied" in denied.stdout + denied.stderr, denied


def test_7_env_status_logs_list_and_remove(world):
    shop = world.projects["shop"]
    value = "hi there = #x 'q' \"dq\""
    res = shop.tova("env", "prod", "set", f"GREETING={value}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert value not in res.stdout + res.stderr
    web = world.web()
    assert distinct_ok(web, SHOP, "/__env/GREETING") == {value}
    listed = shop.tova("env", "prod", "list")
    assert "GREETING" in listed.stdout and value not in listed.stdout
    status = shop.tova("deploy", "prod", "--status")
    assert status.returncode == 0 and "shop" in status.stdout, status.stdout + status.stderr
    js = json.loads(shop.tova("deploy", "prod", "--status", "--json").stdout)
    assert js["app"] == "shop" and len(js["instances"]) == 2
    # The design's status: sizes and counts read from the real engines and Caddy's storage.
    dbs = {d["engine"]: d for d in js["databases"]}
    assert dbs["postgres"]["size_bytes"] > 0 and dbs["redis"]["keys"] >= 1  # the app wrote shop:* keys
    assert js["certificate"]["state"] == "valid" and all(i["memory_bytes"] for i in js["instances"])
    assert "keys:" in status.stdout and "size:" in status.stdout
    logs = shop.tova("deploy", "prod", "--logs")
    assert logs.returncode == 0 and "Tova server running on" in logs.stdout, logs.stdout + logs.stderr
    listing = shop.tova("deploy", "--list", "--server", "tova-testserver")
    assert listing.returncode == 0, listing.stderr
    for name in ("shop", "notes", "notes-staging"):
        assert re.search(rf"^\s*{re.escape(name)}\s", listing.stdout, re.M), listing.stdout
    # Remove staging: stopped, archived with its database dump, ports freed.
    notes = world.projects["notes"]
    ports = world.release_json("status", "notes-staging")["ports"]
    removed = notes.tova("deploy", "staging", "--remove", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    archive = re.search(r"(/opt/tova/archive/notes-staging/\d{8}-\d{6})", removed.stdout)
    assert archive, removed.stdout
    dump = world.ok(f"cat {archive.group(1)}/notes_staging_db.sql")
    assert "PostgreSQL database dump" in dump
    world.ok(f"test -f {archive.group(1)}/app/.env.production")
    apps = {a["app"]: a for a in world.release_json("apps")["apps"]}
    assert "notes-staging" not in apps
    assert not set(ports) & {p for a in apps.values() for p in a["ports"]}
    for port in ports:
        assert world.ssh(f"systemctl is-active tova-notes-staging@{port}").stdout.strip() != "active"
    try:  # Caddy no longer has the site: no certificate for it (TLS alert), or no 200
        status, _ = web.get(STAGING, "/")
    except ssl.SSLError:
        status = None
    assert status != 200


def test_8_two_pushes_at_once_one_waits(world):
    shop = world.projects["shop"]
    shop.edit("src/app.tova", '"shop v4"', '"shop v5"')
    # A build slow enough that the second push surely arrives while this deploy runs.
    shop.edit("src/app.tova", "server {", "// fixture: slow-build 6\nserver {")
    shop.commit("v5")
    first_commit = shop.head()
    # A second clone pushes a descendant of v5 while v5's deploy holds the lock.
    other = Project(world.tmp / "shop-other", world.env)
    check(subprocess.run(["git", "clone", "-q", str(shop.dir), str(other.dir)], capture_output=True, text=True),
          "git clone")
    other.git("remote", "add", "prod", shop.git("remote", "get-url", "prod").stdout.strip())
    other.edit("src/app.tova", '"shop v5"', '"shop v6"')
    other.commit("v6")
    results: dict[str, subprocess.CompletedProcess] = {}
    first = threading.Thread(target=lambda: results.__setitem__("first", shop.push()))
    first.start()
    # Wait until the first deploy holds the app's lock, then push the second.
    deadline = time.time() + 120
    while world.ssh("test -s /opt/tova/apps/shop/.deploy.lock.info").returncode != 0:
        assert time.time() < deadline and first.is_alive(), "the first deploy never took the lock"
        time.sleep(0.2)
    results["second"] = other.push()
    first.join(900)
    out1 = results["first"].stdout + results["first"].stderr
    out2 = results["second"].stdout + results["second"].stderr
    assert results["first"].returncode == 0 and results["second"].returncode == 0, out1 + out2
    assert "Live at https://shop.tova.test (v5)" in out1, out1
    assert "Live at https://shop.tova.test (v6)" in out2, out2
    assert "Waiting for pid" in out2 and "deploy of " + first_commit[:12] in out2, out2
    assert distinct_ok(world.web(), SHOP, "/") == {"shop v6"}
    history = world.release_json("releases", "shop")["releases"]
    commits = {r["version"]: r["commit"] for r in history}
    assert commits["v5"] == first_commit


def test_9_provision_twice_changes_nothing(world):
    first = world.ssh("bash /opt/tova/apps/shop/provision.sh")
    assert first.returncode == 0, first.stdout + first.stderr
    second = world.ssh("bash /opt/tova/apps/shop/provision.sh")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "done: nothing to change, everything was already in place" in second.stdout, second.stdout
    assert ": changed" not in second.stdout
    assert distinct_ok(world.web(), SHOP, "/", 2) == {"shop v6"}


def test_10_unit_security_score(world):
    ports = world.release_json("status", "shop")["ports"]
    assert distinct_ok(world.web(), SHOP, "/", 2) == {"shop v6"}
    out = world.ok(f"systemd-analyze security --no-pager tova-shop@{ports[0]}.service")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert m, out
    assert float(m.group(1)) <= 2.0, out[-2000:]


def test_11_a_user_without_root_or_sudo_gets_a_clear_error(world):
    """setup-git as a plain user: one line of cause and one of remedy, exit 5, no traceback."""
    world.ok("id deployer >/dev/null 2>&1 || useradd -m -s /bin/bash deployer; "
             "install -d -m 700 -o deployer -g deployer ~deployer/.ssh; "
             "install -m 600 -o deployer -g deployer /root/.ssh/authorized_keys ~deployer/.ssh/authorized_keys")
    project = Project.create("notes", world.tmp / "notes-as-deployer", world.env)
    project.edit("src/app.tova", 'server: "tova-testserver"', 'server: "deployer@tova-testserver"')
    project.commit("deploy as a plain user")
    res = project.tova("deploy", "prod", *SETUP_GIT)
    assert res.returncode == 5, res.stdout + res.stderr
    assert "is not root and cannot use sudo without a password" in res.stderr, res.stderr
    assert "hint: connect as root" in res.stderr and "Traceback" not in res.stderr
