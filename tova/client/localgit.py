"""The local project's git repository, through the git CLI (remotes, revisions, push)."""

from __future__ import annotations

from pathlib import Path

from tova.client.ssh import Result, run_local
from tova.errors import TovaError


def git(project: Path, *args: str, env: dict[str, str] | None = None, stream: bool | str = False) -> Result:
    return run_local(["git", "-C", str(project), *args], env=env, stream=stream)


def require_repo(project: Path) -> None:
    if git(project, "rev-parse", "--git-dir").exit_code != 0:
        raise TovaError(
            f"{project} is not a git repository",
            hint="run `git init` and commit your app first: deploys push a git commit",
        )


def remote_url(project: Path, name: str) -> str | None:
    res = git(project, "remote", "get-url", name)
    return res.out.strip() if res.exit_code == 0 else None


def add_remote(project: Path, name: str, url: str) -> None:
    res = git(project, "remote", "add", "--", name, url)
    if res.exit_code != 0:
        raise TovaError(f"could not add git remote {name!r}: {res.err.strip()}", hint="check `git remote -v`")


def rev(project: Path, ref: str) -> str | None:
    res = git(project, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return res.out.strip() if res.exit_code == 0 else None


def has_commit(project: Path, commit: str) -> bool:
    return git(project, "cat-file", "-e", f"{commit}^{{commit}}").exit_code == 0


def changed_files(project: Path, old: str, new: str) -> int | None:
    """Files that differ between two commits; None when either is not in the local repo."""
    if not (has_commit(project, old) and has_commit(project, new)):
        return None
    res = git(project, "diff", "--name-only", old, new, "--")
    if res.exit_code != 0:
        return None
    return len([ln for ln in res.out.splitlines() if ln])
