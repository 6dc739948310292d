"""Attack suite (issue 13), the attacks that need no real services: a hostile push or a
compromised app (which can write its data/ directory) tries to make root read or write
outside what it owns. Run through the real hook and pipeline in a temp root; the ones that
need Bun, Caddy, Redis, PostgreSQL or systemd are in test_attack_e2e.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from release_harness import LIVE_V1

from tova.errors import DeployError
from tova.server import release_tree, safefs

DATA_APP = 'data {\n  source seed = read("seed/x.csv")\n}\n'


def _deploy_with_data(site) -> None:
    site.write_app("v1", extra=DATA_APP)
    (site.work / "seed").mkdir(exist_ok=True)
    (site.work / "seed" / "x.csv").write_text("a,b\n")
    site.commit("with data")
    out = site.push().stderr
    assert LIVE_V1 in out, out
    assert (site.app.data / "seed" / "x.csv").read_text() == "a,b\n"


def test_planted_directory_symlink_in_data_is_not_followed(site, tmp_path):
    _deploy_with_data(site)
    elsewhere = tmp_path / "cron.d"  # stands for any directory root may write
    elsewhere.mkdir()
    # The compromised app replaces data/seed with a symlink out of data/.
    shutil.rmtree(site.app.data / "seed")
    os.symlink(elsewhere, site.app.data / "seed")
    site.write_app("v2", extra=DATA_APP)
    site.commit("v2")
    out = site.push().stderr
    assert "cannot write" in out and "seed" in out, out
    assert list(elsewhere.iterdir()) == []
    assert site.current() == "v1"


def test_planted_file_symlink_in_data_is_replaced_not_followed(site, tmp_path):
    """A regression guard, not an attack that worked: the code before issue 13 replaced a
    final-component link too (write_atomic renames over it). The attacks that worked are
    the directory link above and provisioning's chown (test_6 in test_attack_e2e.py)."""
    _deploy_with_data(site)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (site.app.data / "seed" / "x.csv").unlink()
    os.symlink(victim, site.app.data / "seed" / "x.csv")
    site.write_app("v2", extra=DATA_APP)
    site.commit("v2")
    assert "(v2)" in site.push().stderr
    assert victim.read_text() == "untouched\n"
    assert not (site.app.data / "seed" / "x.csv").is_symlink()


def test_public_symlink_to_root_is_refused(site):
    site.write_app("v1")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    os.symlink("/", site.work / "public")
    site.write_app("v2")
    site.commit("public -> /")
    _without_precheck(site)  # the deploy itself refuses it (tova-release deploy has no pre-receive)
    out = site.push().stderr
    assert "symlink public -> / points outside the project" in out, out
    assert site.current() == "v1"


def test_tova_symlink_outside_the_checkout_is_not_read(site, tmp_path):
    secret = tmp_path / "root-only-secret"
    secret.write_text("TOP-SECRET-LINE here\n")
    site.write_app("v1")
    os.symlink(secret, site.work / "src" / "evil.tova")
    site.commit()
    _without_precheck(site)
    out = site.push().stderr
    assert "points outside the project" in out, out
    assert "TOP-SECRET" not in out
    assert site.current() is None


def _without_precheck(site) -> None:
    """The pre-receive check refuses links out too; without it the deploy must still."""
    (site.app.repo / "hooks" / "pre-receive").unlink()


def test_the_pre_receive_check_refuses_a_link_out_too(site):
    site.write_app("v1")
    os.symlink("/", site.work / "public")
    site.commit()
    out = site.push().stderr
    assert "symlink public -> / points outside the project" in out, out
    assert site.current() is None


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "release"
    (root / "static" / "img").mkdir(parents=True)
    (root / "server.js").write_text("x")
    (root / "bin.sh").write_text("x")
    (root / "bin.sh").chmod(0o700)
    (root / "static" / "img" / "a.png").write_text("x")
    os.symlink("app.server.js", root / "dangling-inside")
    return root


def test_seal_sets_explicit_modes_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        root = _tree(tmp_path)
    finally:
        os.umask(old)
    release_tree.seal(root, os.getgid())
    mode = lambda rel: oct((root / rel).stat().st_mode & 0o7777)  # noqa: E731
    assert [mode(r) for r in ("", "server.js", "bin.sh", "static", "static/img", "static/img/a.png")] == \
        ["0o751", "0o640", "0o750", "0o755", "0o755", "0o644"]


@pytest.mark.parametrize("target", ["/", "../../../other", "../../../release-v0/x", "/etc/passwd"])
def test_seal_refuses_symlinks_leading_out(tmp_path, target):
    root = _tree(tmp_path)
    os.symlink(target, root / "static" / "img" / "out")
    with pytest.raises(DeployError, match="points outside the release"):
        release_tree.seal(root, os.getgid())


def test_seal_refuses_a_chain_that_leads_out(tmp_path):
    root = _tree(tmp_path)
    os.symlink("..", root / "static" / "up")  # inside: the release root
    os.symlink("static/up/..", root / "escape")  # lexically inside, really outside
    with pytest.raises(DeployError, match="escape"):
        release_tree.seal(root, os.getgid())


def test_seal_refuses_special_and_hard_linked_files(tmp_path):
    root = _tree(tmp_path)
    os.mkfifo(root / "fifo")
    with pytest.raises(DeployError, match="special file"):
        release_tree.seal(root, os.getgid())
    os.unlink(root / "fifo")
    os.link(root / "server.js", root / "again.js")
    with pytest.raises(DeployError, match="hard-linked"):
        release_tree.seal(root, os.getgid())


def test_safefs_refuses_dot_dot_and_creates_private_dirs(tmp_path):
    base = tmp_path / "data"
    base.mkdir()
    with pytest.raises(DeployError):
        safefs.write_in(base, "../x", b"x", None)
    safefs.write_in(base, "a/b/c.txt", b"hi", None)
    assert (base / "a" / "b" / "c.txt").read_bytes() == b"hi"
    assert oct((base / "a").stat().st_mode & 0o777) == "0o700"
    assert oct((base / "a" / "b" / "c.txt").stat().st_mode & 0o777) == "0o600"


def test_a_second_app_cannot_claim_another_apps_database():
    from tova.errors import ConfigError
    from tova.server.registry import claim_database, empty

    data = empty(3000)
    claim_database(data, "shop", "postgres", "shop_db")
    with pytest.raises(ConfigError, match="already belongs to app 'shop'"):
        claim_database(data, "evil", "postgres", "shop_db")
    claim_database(data, "shop", "postgres", "shop_db")  # its own, again: fine
    claim_database(data, "shop", "postgres", None)  # shop dropped its database
    claim_database(data, "evil", "postgres", "shop_db")


@pytest.mark.parametrize("name", ["postgres", "template0", "Template1"])
def test_reserved_database_names_are_refused(name):
    from tova.errors import ConfigError
    from tova.server.registry import claim_database, empty

    with pytest.raises(ConfigError, match="reserved by PostgreSQL"):
        claim_database(empty(3000), "evil", "postgres", name)


def test_a_second_app_cannot_claim_another_apps_mariadb_database():
    from tova.errors import ConfigError
    from tova.server.registry import claim_database, empty

    data = empty(3000)
    claim_database(data, "shop", "mysql", "shop_db")
    claim_database(data, "evil", "postgres", "shop_db")  # another engine's namespace: fine
    with pytest.raises(ConfigError, match="the mysql database 'shop_db' already belongs to app 'shop'"):
        claim_database(data, "evil", "mysql", "shop_db")
    claim_database(data, "shop", "mysql", None)
    claim_database(data, "evil", "mysql", "shop_db")


@pytest.mark.parametrize("name", ["mysql", "information_schema", "performance_schema", "sys", "SYS"])
def test_mariadb_reserved_database_names_are_refused(name):
    from tova.errors import ConfigError
    from tova.server.registry import claim_database, empty

    with pytest.raises(ConfigError, match="reserved by MariaDB"):
        claim_database(empty(3000), "evil", "mysql", name)
    claim_database(empty(3000), "evil", "postgres", name.lower())  # PostgreSQL has no such schema


def test_reserved_database_name_is_refused_before_the_deploy(site):
    site.write_app("v1")
    text = (site.work / "src" / "app.tova").read_text()
    text = text.replace('keep_releases: 5\n', 'keep_releases: 5\n  db { postgres { name: "postgres" } }\n')
    (site.work / "src" / "app.tova").write_text(text)
    site.commit()
    out = site.push().stderr
    assert "reserved by PostgreSQL" in out, out
    assert site.current() is None


def _tar(members: list[tuple[str, str, str]]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, arg in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(arg)
                tar.addfile(info, io.BytesIO(arg.encode()))
                continue
            info.type = {"sym": tarfile.SYMTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = arg
            tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("members", [
    [("public", "sym", "/")],
    [("../evil", "file", "x")],
    [("a", "sym", ".."), ("a/evil", "file", "x")],
])
def test_safetar_refuses_what_leaves_the_destination(tmp_path, members):
    """Pushed commits and uploaded compilers are untarred as root. A regression guard for
    the extraction written for Python 3.11.2: tarfile's "data" filter, used before it,
    refused these too. The attack that worked is the next test."""
    import io
    import tarfile

    from tova.server.safetar import extract_safely

    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(tarfile.TarError), tarfile.open(fileobj=io.BytesIO(_tar(members)), mode="r|") as tar:
        extract_safely(tar, dest)
    assert not (tmp_path / "evil").exists()


def test_safetar_never_writes_through_a_link_it_kept(tmp_path):
    """The pre-receive check keeps links out (for the reader to name them); a crafted tree
    naming a path twice (a link, then a directory) must not write through that link."""
    import io
    import tarfile

    from tova.server.safetar import extract_safely

    outside = tmp_path / "cron.d"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    data = _tar([("evil", "sym", str(outside)), ("evil/job", "file", "* * * * * root sh")])
    with pytest.raises(tarfile.TarError), tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        extract_safely(tar, dest, links_out=True)
    assert list(outside.iterdir()) == []


def _history(site) -> list[dict]:
    import json

    try:
        return [json.loads(line) for line in site.app.history.read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def _push_and_hang_up(site, after: str) -> None:
    """Push v2 and run its deploy (the post-receive hook) with its output going to a pipe
    that is closed once `after` shows: git's receive-pack dies that way when the pusher's
    ssh connection drops, and every later write of the deploy fails with EPIPE."""
    import subprocess

    hook = site.app.repo / "hooks" / "post-receive"
    old = site.git("rev-parse", "HEAD~1").stdout.strip()
    hook.rename(hook.with_suffix(".off"))
    try:
        assert site.push().returncode == 0
    finally:
        hook.with_suffix(".off").rename(hook)
    new = site.git("rev-parse", "HEAD").stdout.strip()
    proc = subprocess.Popen([str(hook)], cwd=site.app.repo, env={**site.env, "GIT_DIR": str(site.app.repo)},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{old} {new} refs/heads/main\n")
    proc.stdin.close()
    seen = ""
    for line in proc.stdout:
        seen += line
        if after in line:
            break
    assert after in seen, seen
    proc.stdout.close()  # the pusher is gone
    proc.wait(timeout=120)


def _wait_for(cond, timeout: float = 90) -> None:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_pusher_hanging_up_does_not_abandon_a_failing_deploy(site):
    site.write_app("good")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    site.write_app("broken", health="broken", marker="// fixture: slow-build 2\n")
    site.commit("v2, unhealthy")
    _push_and_hang_up(site, "Compiling")
    # The deploy goes on without the pusher: v2 fails its check and is rolled back.
    _wait_for(lambda: len(_history(site)) == 2)
    assert _history(site)[-1]["outcome"] == "rolled_back", _history(site)
    assert site.current() == "v1"
    assert all(site.get(p) == (200, "good") for p in site.ports())
    # What the pusher missed is in the journal.
    journal = (site.layout.run_dir / "journal.log").read_text()
    assert "Rolled back to v1" in journal, journal


def test_a_pusher_hanging_up_does_not_abandon_a_good_deploy(site):
    site.write_app("good")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    site.write_app("v2", marker="// fixture: slow-build 2\n")
    site.commit("v2")
    _push_and_hang_up(site, "Compiling")
    _wait_for(lambda: len(_history(site)) == 2)
    assert _history(site)[-1]["outcome"] == "ok", _history(site)
    assert site.current() == "v2"
    assert all(site.get(p) == (200, "v2") for p in site.ports())
    assert "Live at https://myapp.example.com (v2)" in (site.layout.run_dir / "journal.log").read_text()


def test_root_files_are_private_and_directories_only_pass_through(site):
    """Another app's user (any local user) may pass through to a release's static/ but list
    or read nothing of root's: repo, history, env files, registry, settings."""
    import stat as st

    site.write_app("v1")
    (site.root / "config.toml").write_text("# settings\n")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    mode = lambda p: st.S_IMODE(p.lstat().st_mode)  # noqa: E731
    for d in (site.root, site.layout.apps_dir, site.app.dir, site.app.releases):
        assert mode(d) == 0o711, d
    for p in (site.app.repo, site.app.build_dir):
        assert mode(p) & 0o077 == 0, p
    for p in (site.layout.registry, site.root / "config.toml", site.app.history, site.app.env_file,
              site.app.provision_script):
        assert mode(p) & 0o077 == 0, p
    release = site.app.release("v1")
    assert mode(release) == 0o751 and mode(release / "server.js") == 0o640
    assert mode(release / ".tova-manifest.json") == 0o640


class _Tty:
    def __init__(self, text: str = "", tty: bool = True) -> None:
        self.text, self.tty = text, tty

    def isatty(self) -> bool:
        return self.tty

    def read(self) -> str:
        return self.text


def test_env_set_asks_for_a_value_without_putting_it_on_the_command_line():
    from tova.client.commands import read_values

    asked = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "s3cret value"

    assert read_values(["JWT_SECRET", "DEBUG=1"], "prod", _Tty(), prompt) == {"JWT_SECRET": "s3cret value",
                                                                             "DEBUG": "1"}
    assert asked == ["JWT_SECRET (input hidden): "]


def test_env_set_reads_a_value_from_stdin():
    from tova.client.commands import read_values

    assert read_values(["KEY", "-"], "prod", _Tty("line one\nline two\n", tty=False)) == {"KEY": "line one\nline two"}
    assert read_values(["KEY", "-"], "prod", _Tty("no newline", tty=False)) == {"KEY": "no newline"}


def test_env_set_without_a_terminal_says_how_and_never_echoes_a_typed_secret():
    from tova.client.commands import read_values
    from tova.errors import TovaError

    with pytest.raises(TovaError) as info:
        read_values(["KEY"], "prod", _Tty(tty=False))
    assert "no terminal" in info.value.message and "set KEY -" in (info.value.hint or "")
    with pytest.raises(TovaError) as info:
        read_values(["hunter2!secret"], "prod", _Tty())
    assert "hunter2" not in info.value.message + (info.value.hint or "")


def test_a_push_that_waited_deploys_the_branch_head_not_its_older_commit(site):
    """Concurrent pushes queue on the deploy lock in any order: the deploy of an older
    commit that runs last must leave the branch head live."""
    import subprocess

    site.write_app("v1")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    old = site.git("rev-parse", "HEAD").stdout.strip()
    hook = site.app.repo / "hooks" / "post-receive"
    hook.rename(hook.with_suffix(".off"))
    try:
        site.write_app("older")
        older = site.commit("older")
        assert site.push().returncode == 0
        site.write_app("newest")
        site.commit("newest")
        assert site.push().returncode == 0
    finally:
        hook.with_suffix(".off").rename(hook)
    # The hook of the older push runs last.
    res = subprocess.run([str(hook)], cwd=site.app.repo, env={**site.env, "GIT_DIR": str(site.app.repo)},
                         input=f"{old} {older} refs/heads/main\n", text=True, capture_output=True)
    assert "main moved on to" in res.stdout, res.stdout + res.stderr
    assert all(site.get(p) == (200, "newest") for p in site.ports())
    # Its own hook then finds the head live already.
    newest = site.git("rev-parse", "HEAD").stdout.strip()
    res = subprocess.run([str(hook)], cwd=site.app.repo, env={**site.env, "GIT_DIR": str(site.app.repo)},
                         input=f"{older} {newest} refs/heads/main\n", text=True, capture_output=True)
    assert "is live already" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("text, problem", [
    ('{"apps": [], "next_port": 3000}', '"apps" is not an object'),
    ('{"apps": {"a": {"ports": "3000"}}, "next_port": 3000}', "ports of app 'a'"),
    ('{"apps": {"a": 5}, "next_port": 3000}', "entry of app 'a'"),
])
def test_a_structurally_wrong_registry_is_a_clear_error_with_a_real_backup(site, text, problem):
    site.write_app("v1")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    backup = site.layout.registry.with_name("registry.json.bak")
    good = site.layout.registry.read_text()
    site.write_app("v2")
    site.commit()
    assert "(v2)" in site.push().stderr
    assert backup.exists()  # kept before each change
    site.layout.registry.write_text(text)
    res = site.release("status", "myapp")
    out = res.stdout + res.stderr
    assert res.returncode != 0 and problem in out and "internal error" not in out, out
    assert f"cp {backup} {site.layout.registry}" in out, out
    assert good  # the hint's copy is a registry that parses
    from tova.server.registry import parse

    parse(backup.read_text(), str(backup), 3000)


def test_current_replaced_by_a_directory_is_a_clear_error(site):
    site.write_app("v1")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    site.app.current.unlink()
    site.app.current.mkdir()
    site.write_app("v2")
    site.commit()
    out = site.push().stderr
    assert "is a directory, not the link to a release" in out and "internal error" not in out, out
    assert site.app.current.is_dir() and not site.app.current.is_symlink()


def test_status_says_when_the_live_release_is_gone(site):
    import json
    import shutil as sh

    site.write_app("v1")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    assert json.loads(site.release("status", "myapp", "--json", check=True).stdout)["problems"] == []
    sh.rmtree(site.app.release("v1"))
    st = json.loads(site.release("status", "myapp", "--json", check=True).stdout)
    assert st["problems"] == ["current points at releases/v1, which does not exist"], st["problems"]
    assert "! current points at releases/v1" in site.release("status", "myapp", check=True).stdout


@pytest.fixture
def small_disk_site(tmp_path):
    """A site whose TOVA_ROOT is a 16 MB tmpfs (the client's work tree is not on it)."""
    import subprocess

    from release_harness import Site

    root = tmp_path / "opt-tova"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(root)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a small tmpfs needs root: {mounted.stderr.strip()}")
    site = Site(tmp_path)
    try:
        yield site
    finally:
        site.close()
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_a_full_disk_during_a_deploy_is_named_recorded_and_changes_nothing(small_disk_site):
    import json

    site = small_disk_site
    site.release("env", "myapp", "set", "API_TOKEN=s3cret", check=True)
    site.write_app("v1")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    registry, env = site.layout.registry.read_bytes(), site.app.env_file.read_bytes()
    # 64 MB of zeros: a tiny pack in repo.git, four times the disk once checked out.
    site.write_app("v2")
    with open(site.work / "big.bin", "wb") as f:
        f.truncate(64 << 20)
    site.commit("big")
    out = site.push().stderr
    assert "error: the server's disk is full" in out and "(at step checkout; nothing was switched)" in out, out
    assert "hint: free space on the server" in out, out
    assert "internal error" not in out and "Traceback" not in out, out
    assert site.current() == "v1" and all(site.get(p) == (200, "v1") for p in site.ports())
    assert site.layout.registry.read_bytes() == registry and site.app.env_file.read_bytes() == env
    last = _history(site)[-1]
    assert last["outcome"] == "failed" and last["step"] == "checkout", last
    assert "disk is full" in last["error"], last
    assert json.loads(site.release("status", "myapp", "--json", check=True).stdout)["problems"] == []
    # Once the space is back (here: the big file gone), the next push deploys.
    (site.work / "big.bin").unlink()
    site.commit("no big file")
    assert "Live at https://myapp.example.com (v2)" in site.push().stderr


def test_an_app_removed_twice_within_a_second_keeps_both_archives(site):
    import time

    site.write_app("v1")
    site.commit()
    assert LIVE_V1 in (out := site.push().stderr), out
    now = time.time()
    earlier = {str(site.layout.archive_dir / "myapp" / time.strftime("%Y%m%d-%H%M%S", time.localtime(now + i)))
               for i in range(10)}  # earlier removals within the second the next one happens in
    for path in earlier:
        os.makedirs(path)
    res = site.release("remove", "myapp", "--yes", "--json")
    assert res.returncode == 0 and "internal error" not in res.stderr, res.stderr
    archive = __import__("json").loads(res.stdout)["archive"]
    assert archive.endswith("-2") and archive[:-2] in earlier, archive


def test_a_full_disk_in_any_command_is_named_not_called_a_bug(capsys):
    import errno

    from tova.errors import run_at_edge

    def body() -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/opt/tova/apps/a/.env.production")

    assert run_at_edge(body) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: the server's disk is full: cannot write /opt/tova/apps/a/.env.production",
        "hint: free space on the server (see df -h; old releases go with a lower keep_releases, "
        "removed apps' archives stay under the toolkit's archive/), then try again"], err
