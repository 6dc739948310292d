"""MariaDB for `driver: "mysql"` apps (issue 11 point 5) on the test server, through the
real client, sshd and `git push`: two apps each get their own database and user, neither
reaches the other's, `--status` reads the database's size, and `--remove` archives a dump
before it drops the database and the user.

One freshly reset server for the module; tests run in file order."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_support  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import SETUP_GIT, Project, World, configure_server  # noqa: E402

pytestmark = pytest.mark.e2e

e2e_support.skip_module_without_test_server()


def _deploy(world: World, name: str) -> Project:
    """The `tally` fixture as app `name` (its own domain), set up and pushed."""
    p = Project.create("tally", world.tmp / name, world.env)
    if name != "tally":
        p.edit("tova.toml", 'name = "tally"', f'name = "{name}"')
        p.edit("src/app.tova", 'domain: "tally.tova.test"', f'domain: "{name}.tova.test"')
        p.commit(f"app {name}")
    setup = p.tova("deploy", "prod", *SETUP_GIT)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    push = p.push()
    assert f"Live at https://{name}.tova.test (v1)" in push.stderr, push.stdout + push.stderr
    world.projects[name] = p
    return p


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    config = ts.reset()
    configure_server(config)
    w = World(config, tmp_path_factory.mktemp("mariadb"))
    _deploy(w, "tally")
    _deploy(w, "abacus")
    for name in ("tally", "abacus"):
        status, body = w.web().request(f"{name}.tova.test", "POST", "/api/entries")[0::2]
        assert status == 200 and body == "added", (name, status, body)
    return w


def _as_app(world: World, app: str, sql: str):
    """`sql` with the credentials of the app's DATABASE_URL, over TCP like the app."""
    url = urlsplit(world.env_file(app)["DATABASE_URL"])
    return world.ssh(f"MYSQL_PWD={shlex.quote(url.password or '')} mariadb --batch --skip-column-names "
                     f"-h 127.0.0.1 -P {url.port} -u {shlex.quote(url.username or '')} "
                     f"-e {shlex.quote(sql)}")


def test_1_each_app_gets_its_own_database_and_user(world):
    for app in ("tally", "abacus"):
        url = urlsplit(world.env_file(app)["DATABASE_URL"])
        assert (url.scheme, url.username, url.hostname, url.path) == ("mysql", f"tova_{app}", "127.0.0.1",
                                                                       f"/{app}_db")
    assert _as_app(world, "abacus", "SELECT count(*) FROM abacus_db.entries").stdout.strip() == "1"
    assert _as_app(world, "tally", "SELECT count(*) FROM tally_db.entries").stdout.strip() == "1"


def test_2_another_apps_credentials_cannot_reach_its_database(world):
    attacks = {
        "read": "SELECT note FROM tally_db.entries",
        "write": "INSERT INTO tally_db.entries (note) VALUES ('abacus was here')",
        "drop": "DROP TABLE tally_db.entries",
        "use": "USE tally_db",
        "create a database": "CREATE DATABASE abacus_extra",
        "grant itself": "GRANT ALL ON tally_db.* TO CURRENT_USER",
        "read the grant tables": "SELECT user, password FROM mysql.user",
    }
    for what, sql in attacks.items():
        res = _as_app(world, "abacus", sql)
        assert res.returncode != 0 and "denied" in res.stderr, (what, res.stdout, res.stderr)
    shown = _as_app(world, "abacus", "SHOW DATABASES").stdout.split()
    assert "tally_db" not in shown and "abacus_db" in shown, shown
    # The app's unix user gets nothing through the socket either (no such MariaDB user).
    res = world.ssh("runuser -u tova-abacus -- mariadb -e 'SHOW DATABASES'")
    assert res.returncode != 0 and "tally_db" not in res.stdout, (res.stdout, res.stderr)
    # tally's data is untouched and its own user still reads and writes it.
    assert _as_app(world, "tally", "SELECT count(*) FROM tally_db.entries").stdout.strip() == "1"
    res = _as_app(world, "tally", "INSERT INTO tally_db.entries (note) VALUES ('own')")
    assert res.returncode == 0, res.stderr


def test_3_status_shows_the_database_and_its_size(world):
    tally = world.projects["tally"]
    js = json.loads(tally.tova("deploy", "prod", "--status", "--json").stdout)
    dbs = {d["engine"]: d for d in js["databases"]}
    assert dbs["mysql"]["name"] == "tally_db" and dbs["mysql"]["state"] == "active", dbs
    assert dbs["mysql"]["size_bytes"] > 0, dbs
    text = tally.tova("deploy", "prod", "--status")
    assert re.search(r"MariaDB .* running .*tally_db .*size: ", text.stdout), text.stdout


def test_4_remove_archives_a_dump_then_drops_database_and_user(world):
    removed = world.projects["tally"].tova("deploy", "prod", "--remove", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    archive = re.search(r"(/opt/tova/archive/tally/\d{8}-\d{6})", removed.stdout)
    assert archive, removed.stdout
    dump = world.ok(f"cat {archive.group(1)}/tally_db.sql")
    assert "CREATE DATABASE" in dump and "`tally_db`" in dump and "'own'" in dump, dump[-2000:]
    assert world.ok(f"stat -c '%U %a' {archive.group(1)}/tally_db.sql").strip() == "root 600"
    assert world.ok("mariadb --batch --skip-column-names -e \"SHOW DATABASES LIKE 'tally_db'\"").strip() == ""
    assert world.ok("mariadb --batch --skip-column-names "
                    "-e \"SELECT count(*) FROM mysql.user WHERE user = 'tova_tally'\"").strip() == "0"
    # The dump restores: the archived data is really there.
    world.ok(f"mariadb < {archive.group(1)}/tally_db.sql")
    assert world.ok("mariadb --batch --skip-column-names -e 'SELECT count(*) FROM tally_db.entries'").strip() == "2"
    world.ok("mariadb -e 'DROP DATABASE tally_db'")
    # abacus is untouched.
    assert _as_app(world, "abacus", "SELECT count(*) FROM abacus_db.entries").stdout.strip() == "1"
    status, body = world.web().get("abacus.tova.test", "/api/entries")
    assert (status, body) == (200, "1")
