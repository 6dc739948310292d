"""A new user's path on the local test server (issues 14 and 15), in file order:

1. the README's test-server steps ("Deploying your own app") run literally in bash, for a
   project without tova.toml and without a health route, through the custom ssh config
   (TOVA_SSH_CONFIG) and a plain `git push` (no GIT_SSH_COMMAND): the plan names the
   fallback check, the app is served over HTTPS;
2. pushes whose deploy cannot start (an invalid deploy block, a missing secret) are
   rejected by git: non-zero exit, the server's branch unchanged, nothing deployed;
3. an explicit `health:` answering 500 is rolled back, and `tova deploy prod` exits
   non-zero for it (what CI relies on)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_support  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import GIT_ID, Https, fetch_ca, server_addr  # noqa: E402

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
DOMAIN = "myapp.tova.test"
APP = """server {
  fn home() { text("hello from myapp") }
  fn status() { respond(500, "down") }
  route GET "/" => home
  route GET "/status" => status
}

deploy "prod" {
  server: "tova-testserver"
  domain: "myapp.tova.test"
%s}
"""

e2e_support.skip_module_without_test_server()


def readme_steps() -> str:
    """The README's test-server block, exactly as written."""
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- test-server-steps[^>]*-->\n```bash\n(.*?)```\n<!-- /test-server-steps -->", text, re.S)
    assert m, "the README lost its test-server steps"
    return m.group(1)


class User:
    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        self.project = self.home / "code" / "myapp"
        self.project.mkdir(parents=True)
        # The user's shell: tova-deploy installed (this checkout's venv) first on PATH, no
        # GIT_SSH_COMMAND or TOVA_SSH_CONFIG of the test harness.
        bindir = str(Path(sys.executable).parent)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("GIT_SSH_COMMAND", "GIT_SSH", "TOVA_SSH_CONFIG", "PYTHONPATH")}
        self.env.update(HOME=str(self.home), PATH=f"{bindir}:{os.environ['PATH']}", NO_COLOR="1")
        self.config: Path | None = None

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**self.env, "TOVA_SSH_CONFIG": str(self.config)} if self.config else self.env
        res = subprocess.run(["git", *GIT_ID, *args], cwd=self.project, env=env, capture_output=True,
                             text=True, timeout=900)
        if check and res.returncode != 0:
            raise AssertionError(f"git {args} failed:\n{res.stdout}\n{res.stderr}")
        return res

    def write(self, extra: str = "", security: str = "") -> None:
        (self.project / "app.tova").write_text(APP % extra + security)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.strip()

    def server_head(self) -> str:
        res = ts.ssh("git --git-dir=/opt/tova/apps/myapp/repo.git rev-parse refs/heads/main", config=self.config)
        return res.stdout.strip()

    def tova(self, *args: str) -> subprocess.CompletedProcess:
        env = {**self.env, "TOVA_SSH_CONFIG": str(self.config)}
        return subprocess.run(["tova", *args], cwd=self.project, env=env, capture_output=True, text=True,
                              timeout=900)


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> User:
    config = ts.reset()
    u = User(tmp_path_factory.mktemp("newuser"))
    u.config = config
    # The home has the checkout where the README says (a link to this one).
    (u.home / "tova-deploy").symlink_to(REPO)
    u.git("init", "-q", "-b", "main")
    u.write()
    u.commit("my app")
    assert not (u.project / "tova.toml").exists()
    return u


def test_1_readme_steps_literally_with_custom_ssh_config_and_plain_git_push(user):
    script = readme_steps()
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=user.home, env=user.env,
                         capture_output=True, text=True, timeout=1800)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    # --plan said which check a deploy uses: no route answers /healthz here
    assert "fallback check every 30s" in out and "warning: no route answers GET /healthz" in out, out
    # ...and, before --setup-git, the TLS mode the server's config.toml sets (the test server's)
    assert 'Domain:    myapp.tova.test (TLS from Caddy\'s local CA: tls = "internal")' in out, out
    # the uploaded compiler's line sits with the server's progress lines under the step
    assert "\n    Uploaded the Tova compiler to /opt/tova/compiler/tova\n    Toolchain: " in out, out
    # --setup-git's slow steps on this fresh server: what it installs as it goes, and their time
    assert re.search(r"→ Installing toolkit \S+ +✓ \d", out), out
    assert "installing nodejs npm..." in out and "setting up npm (" in out, out
    assert re.search(r"→ done +✓ \d+(\.\d)?s|→ done +✓ \dm\d\ds", out), out
    # --setup-git gave the project the ssh config, so the plain git push resolved the host
    ssh_command = user.git("config", "core.sshCommand").stdout
    assert str(user.config) in ssh_command
    assert f"Live at https://{DOMAIN}" in out and "Fallback check (no route answers GET /healthz)" in out, out
    # curl's answer, through Caddy with its local CA
    assert res.stdout.rstrip().endswith("hello from myapp"), res.stdout
    web = Https(server_addr(user.config), fetch_ca(user.config, user.home / "ca.crt"))
    assert web.get(DOMAIN, "/") == (200, "hello from myapp")


def test_2_an_invalid_deploy_block_is_rejected_by_git(user):
    before = user.server_head()
    user.write('  instances: 99\n')
    user.commit("too many instances")
    res = user.git("push", "prod", "main", check=False)
    assert res.returncode != 0, res.stderr
    assert "pre-receive hook declined" in res.stderr and "Push rejected" in res.stderr
    assert "remote: app.tova:11:14: instances must be between 1 and 32, not 99" in res.stderr, res.stderr
    assert user.server_head() == before
    assert "Received push" not in res.stderr
    user.git("reset", "-q", "--hard", "HEAD~1")


def test_2b_a_missing_secret_is_rejected_by_git(user):
    before = user.server_head()
    user.write(security='\nsecurity {\n  auth jwt {\n    secret: env("JWT_SECRET")\n  }\n}\n')
    user.commit("needs a secret")
    res = user.git("push", "prod", "main", check=False)
    assert res.returncode != 0 and "missing required secrets: JWT_SECRET" in res.stderr, res.stderr
    assert "tova env prod set JWT_SECRET=..." in res.stderr
    assert user.server_head() == before
    user.git("reset", "-q", "--hard", "HEAD~1")


def test_3_explicit_health_answering_500_is_rolled_back_and_tova_deploy_fails(user):
    user.write('  health: "/status"\n')
    user.commit("strict health on a 500 route")
    plan = user.tova("deploy", "prod", "--plan", "--local")
    assert "Health:    GET /status every 30s" in plan.stdout and "fallback" not in plan.stdout, plan.stdout
    res = user.git("push", "prod", "main", check=False)
    assert res.returncode == 0  # accepted: only a deploy can find a failing health check
    assert "Health check /status..." in res.stderr and "Rolled back to v1" in res.stderr, res.stderr
    # the same commit again through tova: the redeploy is rolled back too, exit status 1
    again = user.tova("deploy", "prod")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "Rolled back to v1" in again.stdout + again.stderr
    web = Https(server_addr(user.config), fetch_ca(user.config, user.home / "ca2.crt"))
    assert web.get(DOMAIN, "/") == (200, "hello from myapp")
