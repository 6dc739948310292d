"""Real Tova apps (issue 11), each on a freshly reset test server with no manual step but
the server settings: through the real client, sshd and `git push`, the compiler uploaded
with `--setup-git --compiler` (the fixture, or a real build: TOVA_E2E_COMPILER).

- ledger: PostgreSQL through the compiler's `db` (the npm package `postgres`);
- jot: SQLite at a relative `path:`, which must land in the app's data/;
- tally: MySQL (MariaDB) through `db { driver: "mysql" }` (the npm package `mysql2`);
- gallery: a browser block served by Caddy, public/, and an `[npm]` dependency imported
  by the server and the browser block.
Each serves pages and API over HTTPS, keeps its data across a redeploy and a rollback, and
runs with NODE_ENV=production."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_support  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import SETUP_GIT, Https, Project, check, configure_server, fetch_ca, server_addr  # noqa: E402

pytestmark = pytest.mark.e2e


e2e_support.skip_module_without_test_server()


class Fresh:
    """One freshly reset server with one project on it."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.config = ts.reset()
        configure_server(self.config)
        env = {**ts.ssh_env(self.config), "TOVA_NO_COLOR": "1", "NO_COLOR": "1"}
        self.name, self.domain = name, f"{name}.tova.test"
        self.project = Project.create(name, tmp / name, env)
        self.tmp = tmp
        self._web: Https | None = None

    def ssh(self, cmd: str) -> str:
        return check(ts.ssh(cmd, config=self.config), cmd).stdout

    def web(self) -> Https:
        if self._web is None:
            self._web = Https(server_addr(self.config), fetch_ca(self.config, self.tmp / "caddy-root.crt"))
        return self._web

    def get(self, path: str) -> str:
        status, body = self.web().get(self.domain, path)
        assert status == 200, (path, status, body)
        return body

    def post(self, path: str) -> str:
        status, _, body = self.web().request(self.domain, "POST", path)
        assert status == 200, (path, status, body)
        return body

    def setup_and_push(self) -> str:
        setup = self.project.tova("deploy", "prod", *SETUP_GIT)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        return self.push("v1")

    def push(self, version: str) -> str:
        res = self.project.push()
        out = res.stdout + res.stderr
        assert res.returncode == 0 and f"Live at https://{self.domain} ({version})" in out, out
        return out

    def redeploy_with(self, old: str, new: str, version: str) -> str:
        self.project.edit("src/app.tova", old, new)
        self.project.commit(f"{new}")
        return self.push(version)

    def rollback(self) -> None:
        res = self.project.tova("deploy", "prod", "--rollback")
        assert res.returncode == 0, res.stdout + res.stderr

    def manifest(self) -> dict:
        return json.loads(self.ssh(f"cat /opt/tova/apps/{self.name}/current/.tova-manifest.json"))


def _data_survives_redeploy_and_rollback(app: Fresh) -> None:
    assert app.get("/") == f"{app.name} v1"
    assert app.get("/api/mode") == "production"
    assert [app.post("/api/entries") for _ in range(2)] == ["added", "added"]
    assert app.get("/api/entries") == "2"
    out = app.redeploy_with(f'"{app.name} v1"', f'"{app.name} v2"', "v2")
    assert "Infrastructure: no changes" in out
    assert app.get("/") == f"{app.name} v2" and app.get("/api/entries") == "2"
    assert app.post("/api/entries") == "added"
    app.rollback()
    assert app.get("/") == f"{app.name} v1" and app.get("/api/entries") == "3"
    assert app.get("/api/mode") == "production"


def test_postgres_app(tmp_path):
    app = Fresh("ledger", tmp_path)
    out = app.setup_and_push()
    assert "Installing npm dependencies" in out
    assert set(app.manifest()["dependencies"]) == {"postgres"}
    _data_survives_redeploy_and_rollback(app)


def test_sqlite_app_keeps_its_file_in_data(tmp_path):
    app = Fresh("jot", tmp_path)
    app.setup_and_push()
    assert app.manifest()["dependencies"] == {}
    _data_survives_redeploy_and_rollback(app)
    files = app.ssh("cd /opt/tova/apps/jot && ls data; find -L releases -name 'jot.db*'")
    assert "jot.db" in files.split("\n")[0:3] and "releases/" not in files


def test_mysql_app(tmp_path):
    app = Fresh("tally", tmp_path)
    out = app.setup_and_push()
    assert set(app.manifest()["dependencies"]) == {"mysql2"}
    assert "mariadb" in app.ssh("systemctl list-units --type=service --state=running --no-legend").lower()
    env = app.ssh("cat /opt/tova/apps/tally/.env.production")
    assert "DATABASE_URL=mysql://tova_tally:" in env, out
    _data_survives_redeploy_and_rollback(app)


def test_browser_block_public_and_npm_dependency(tmp_path):
    app = Fresh("gallery", tmp_path)
    out = app.setup_and_push()
    assert app.manifest()["dependencies"] == {"ms": "2.1.3"}
    status = app.project.tova("deploy", "prod", "--status")
    assert "Dependencies: ms 2.1.3" in status.stdout, status.stdout + status.stderr
    web = app.web()
    status, headers, page = web.request(app.domain, "GET", "/")
    assert status == 200 and 'src="/.tova-out/client.' in page, (status, page)
    assert headers.get("cache-control") == "no-cache"
    script = "/.tova-out/" + page.split('src="/.tova-out/', 1)[1].split('"', 1)[0]  # the app's own script
    status, headers, body = web.request(app.domain, "GET", script)
    assert status == 200 and "Gallery" in body, (status, body)
    # The browser block's npm import, installed before the build, is bundled into it.
    assert "val is not a non-empty string or a valid number" in body, body
    assert "immutable" in headers.get("cache-control", "")
    assert app.get("/robots.txt").startswith("User-agent")
    # A page of the browser app's own (no route on the server): the build's 200.html; an
    # API call to a path the app does not have still gets the app's 404.
    status, headers, body = web.request(app.domain, "GET", "/photos/42", headers={"Accept": "text/html"})
    assert status == 200 and 'src="/.tova-out/client.' in body and headers.get("cache-control") == "no-cache"
    assert web.request(app.domain, "GET", "/photos/42", headers={"Accept": "application/json"})[0] == 404
    assert web.request(app.domain, "GET", "/api/mode", headers={"Accept": "text/html"})[2] == "production"
    # The server bundle is not served; the API goes to the app, which uses its npm package.
    assert web.get(app.domain, "/server.js")[0] == 404
    assert app.get("/api/took") == "2m" and app.get("/api/mode") == "production"
    # A code-only redeploy reuses the installed dependencies; a rollback keeps serving.
    out = app.redeploy_with("ms(90000)", "ms(150000)", "v2")
    assert "Dependencies unchanged: ms 2.1.3" in out
    assert app.get("/api/took") == "3m"
    app.rollback()
    assert app.get("/api/took") == "2m" and web.get(app.domain, script)[0] == 200
