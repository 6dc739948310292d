"""Issue 14 point 3: the pre-receive hook rejects a push whose deploy cannot start, so git
itself fails and the branch does not move; the post-receive hook still deploys the rest.
Real `git push` into a bare repository set up by `tova-release init` (tests/release_harness)."""

from __future__ import annotations

from tova.server.precheck import compiler_problem, parse_updates
from tova.settings import ServerSettings

GOOD = """server {
  fn home() { text("v1") }
  fn healthz() { text("ok") }
  route GET "/" => home
  route GET "/healthz" => healthz
}

deploy "prod" {
  server: "root@example.com"
  domain: "myapp.example.com"
%s}
"""

NEEDS_SECRET = """
security {
  auth jwt {
    secret: env("API_TOKEN")
  }
}
"""


def _write(site, text: str) -> None:
    src = site.work / "src"
    src.mkdir(exist_ok=True)
    (src / "app.tova").write_text(text)


def _server_head(site, branch: str = "main") -> str | None:
    res = site.git("--git-dir", str(site.app.repo), "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False)
    return res.stdout.strip() or None


def test_invalid_deploy_block_is_rejected_and_the_branch_does_not_move(site):
    _write(site, GOOD % "")
    good = site.commit("good")
    assert site.push().returncode == 0
    _write(site, GOOD % "  instances: 99\n")
    site.commit("too many instances")
    res = site.push()
    assert res.returncode != 0
    assert "pre-receive hook declined" in res.stderr
    assert "[tova] ✗ Push rejected: refs/heads/main was not updated" in res.stderr
    # located relative to the project, not the server's temporary checkout
    assert "remote: src/app.tova:11:14:" in res.stderr, res.stderr
    remote = "\n".join(line for line in res.stderr.splitlines() if line.startswith("remote:"))
    assert "/tmp" not in remote and "tova-precheck" not in remote and "../" not in remote
    assert "Received push" not in res.stderr  # post-receive never ran
    assert _server_head(site) == good
    assert site.current() == "v1"


def test_missing_secret_is_rejected_until_it_is_set(site):
    _write(site, GOOD % "" + NEEDS_SECRET)
    site.commit("needs a secret")
    res = site.push()
    assert res.returncode != 0 and "missing required secrets: " in res.stderr and "API_TOKEN" in res.stderr, res.stderr
    assert "API_TOKEN=..." in res.stderr and "tova env prod set" in res.stderr
    assert _server_head(site) is None and site.current() is None
    site.release("env", "myapp", "set", "API_TOKEN=s3cret", "JWT_SECRET=s3cret", check=True)
    res = site.push()
    assert res.returncode == 0 and "Received push to main" in res.stderr, res.stderr


def test_missing_compiler_is_rejected(site):
    _write(site, GOOD % "")
    site.commit("good")
    res = site.push(extra_env={"TOVA_COMPILER": "/nonexistent/tova", "TOVA_COMPILER_INSTALL": ""})
    assert res.returncode != 0
    assert "the Tova compiler /nonexistent/tova is not installed on this server" in res.stderr
    assert "tova deploy prod --setup-git --compiler PATH" in res.stderr, res.stderr  # the real env
    assert _server_head(site) is None


def test_a_missing_toolkit_is_rejected(site, tmp_path):
    _write(site, GOOD % "")
    site.commit("good")
    res = site.push(extra_env={"TOVA_TOOLKIT": str(tmp_path / "no-toolkit")})
    assert res.returncode != 0 and "pre-receive hook declined" in res.stderr
    assert "the tova toolkit is missing on this server" in res.stderr, res.stderr
    assert "tova deploy prod --setup-git" in res.stderr
    assert _server_head(site) is None


def test_other_branches_and_deletions_are_not_checked(site):
    _write(site, GOOD % "  instances: 99\n")
    site.commit("broken, but on a side branch")
    site.git("branch", "side")
    res = site.push("side")
    assert res.returncode == 0, res.stderr
    assert _server_head(site, "side") is not None
    assert site.push(":side").returncode == 0
    assert _server_head(site, "side") is None


def test_a_deploy_block_naming_another_branch_is_not_checked_on_main(site):
    _write(site, GOOD % '  branch: "release"\n' + NEEDS_SECRET)
    site.commit("deploys from release")
    res = site.push()
    assert res.returncode == 0 and "Push rejected" not in res.stderr, res.stderr


def test_compiler_problem_is_pure():
    def settings(compiler: str, install: str = "") -> ServerSettings:
        return ServerSettings(compiler=compiler, compiler_install=install)

    assert compiler_problem(settings("tova"), which=lambda name: None) is not None
    assert compiler_problem(settings(""), which=lambda name: None) is not None
    assert compiler_problem(settings("tova"), which=lambda name: "/usr/bin/tova") is None
    assert compiler_problem(settings("tova", "npm i -g x"), which=lambda name: None) is None
    assert compiler_problem(settings("'unbalanced"), which=lambda name: "/x") is not None


def test_parse_updates():
    ups = parse_updates(["a b refs/heads/main\n", "junk\n", f"{'1' * 40} {'0' * 40} refs/tags/v1\n"])
    assert [(u.ref, u.branch) for u in ups] == [("refs/heads/main", "main"), ("refs/tags/v1", None)]


def test_a_project_without_tova_toml_deploys_under_its_recorded_name(site):
    """Issue 9 point 4: the pre-receive check reads the push in a folder called `src`; the
    app is the one recorded with the repository, not that folder."""
    (site.work / "tova.toml").unlink()
    _write(site, GOOD % "")
    site.commit("no tova.toml")
    res = site.push()
    assert res.returncode == 0, res.stderr
    assert "'src'" not in res.stderr
    assert site.current() == "v1"


def test_the_deploy_takes_the_manifest_the_check_kept(site):
    """The pre-receive check keeps the manifest it read; the post-receive deploy takes it
    (and reads no project of its own for it). A rejected push keeps nothing."""
    from tova.server import prechecked

    kept = site.app.dir / prechecked.DIR_NAME
    _write(site, GOOD % "")
    site.commit("good")
    assert site.push().returncode == 0 and site.current() == "v1"
    assert kept.is_dir() and list(kept.iterdir()) == []  # kept, then taken
    _write(site, GOOD % "  instances: 99\n")
    site.commit("too many instances")
    assert site.push().returncode != 0
    assert list(kept.iterdir()) == []
