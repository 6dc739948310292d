"""The local side of `tova deploy <env> ...` and `tova env <env> ...`: plain functions that
take parsed options, talk to the server over one ssh connection and return an exit code.
Errors are raised as TovaError subclasses for the CLI edge to print."""

from __future__ import annotations

import getpass
import json as jsonlib
import os
import sys
from pathlib import Path
from typing import Any

from tova.capacity import first_provisioning, memory_commit
from tova.client import bootstrap, localgit, screens
from tova.client.remote import Probe, Server
from tova.client.ssh import Target
from tova.errors import (
    EXIT_FAILED,
    EXIT_MISSING_SECRETS,
    EXIT_OK,
    EXIT_USAGE,
    DeployError,
    MissingSecretsError,
    TovaError,
)
from tova.manifest import LAYERS, Manifest, changed_layers
from tova.progress import FAIL, heading, note, say, step

SECRET_PREFIX = "TOVA_SECRET_"
_SECRET_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _server(manifest: Manifest) -> Server:
    return Server(Target.parse(manifest.server), manifest.env)


def _is_tty() -> bool:
    return sys.stdin.isatty()


# ---------------------------------------------------------------- setup-git
def cmd_setup_git(project_dir: Path, manifest: Manifest, *, offline: bool, compiler: Path | None = None) -> int:
    with _server(manifest) as server:
        bootstrap.setup_git(project_dir, manifest, server, offline=offline, compiler=compiler)
    return EXIT_OK


# ---------------------------------------------------------------- deploy
def cmd_deploy(project_dir: Path, manifest: Manifest, *, yes: bool) -> int:
    """Push the environment's branch (the server's hook deploys it), or, when the server
    already has that commit, ask for a redeploy of it. Returns the deploy's outcome."""
    localgit.require_repo(project_dir)
    commit = localgit.rev(project_dir, manifest.branch)
    if commit is None:
        raise TovaError(
            f"branch {manifest.branch!r} has no commits in {project_dir}",
            hint=f"commit your app on {manifest.branch} (the deploy block's branch) first",
        )
    with _server(manifest) as server:
        server.connect()
        say(step(f"Connecting to {server.display}..."))
        probe = server.probe(manifest.app)
        url = server.target.git_url(server.renv.repo_path(manifest.app))
        remote = localgit.remote_url(project_dir, manifest.env)
        if not probe.toolkit or not probe.repo or remote is None:
            say("", heading("First deploy: setting up the server..."))
            bootstrap.setup_git(project_dir, manifest, server, offline=False, announce=False)
            remote = localgit.remote_url(project_dir, manifest.env)
            say("")
        ensure_secrets(server, manifest)
        # Push to the remote by name only when it is ours; a user's remote of the same
        # name pointing elsewhere must not receive the deploy.
        dest = manifest.env if remote == url else url
        up_to_date = push(project_dir, manifest, server, dest)
        if up_to_date:
            say(note(f"The server already has {commit[:12]}: redeploying it"))
            res = server.release(["deploy", manifest.app, "--rev", commit], stream=True)
            return res.exit_code
        return pushed_outcome(server, manifest, commit)


def ensure_secrets(server: Server, manifest: Manifest) -> None:
    """Prompt (hidden) for required secrets the server lacks; without a TTY, fail with the
    command that sets them."""
    required = list(manifest.secrets.required)
    if not required:
        return
    names = set(server.release_json(["env", manifest.app, "list"]).get("names") or [])
    missing = [n for n in required if n not in names]
    if not missing:
        return
    # Non-interactive (CI): TOVA_SECRET_<NAME> from the environment. The prefix keeps an
    # unrelated variable of the same name from being uploaded by accident.
    values: dict[str, str] = {n: os.environ[SECRET_PREFIX + n] for n in missing if os.environ.get(SECRET_PREFIX + n)}
    missing = [n for n in missing if n not in values]
    if missing and not _is_tty():
        raise MissingSecretsError(missing, manifest.env)
    if missing:
        say(heading("Configuring secrets..."), note("Missing secrets:"))
    for name in missing:
        value = getpass.getpass(f"      {name}: ")
        if not value:
            raise MissingSecretsError([n for n in missing if n not in values], manifest.env)
        values[name] = value
    server.release_ok(["env", manifest.app, "set"], stdin=jsonlib.dumps(values).encode())
    say(step(f"{len(values)} secret{'s' if len(values) != 1 else ''} configured"))


def push(project_dir: Path, manifest: Manifest, server: Server, dest: str) -> bool:
    """`git push DEST B:B` over our ssh master, the server's output streamed. Returns True
    when the server already had the commit (nothing was pushed, so no hook ran)."""
    branch = manifest.branch
    env = dict(os.environ, GIT_SSH_COMMAND=server.conn.git_ssh_command())
    args = ["push", "--porcelain"]
    rp = bootstrap.receive_pack(server)
    if rp is not None:
        args.append(f"--receive-pack={rp}")
    args += ["--", dest, f"refs/heads/{branch}:refs/heads/{branch}"]
    res = localgit.git(project_dir, *args, env=env, stream="err")
    if res.exit_code != 0 and "pre-receive hook declined" in res.err:
        # The server's check said why above (remote: lines); git did not move the branch.
        err = DeployError(
            f"{server.display} rejected the push: nothing was deployed and {branch} did not move there",
            hint="fix what the server reported above and deploy again",
        )
        if "missing required secrets" in res.err:
            err.exit_code = EXIT_MISSING_SECRETS
        raise err
    if res.exit_code != 0:
        raise DeployError(
            f"git push to {server.display} failed",
            hint=f"see git's message above; `tova deploy {manifest.env} --setup-git` repairs the remote",
        )
    return porcelain_up_to_date(res.out, branch)


def porcelain_up_to_date(out: str, branch: str) -> bool:
    """`git push --porcelain` marks a ref the remote already had with `=`."""
    ref = f"refs/heads/{branch}:refs/heads/{branch}"
    return any(line.startswith("=\t") and ref in line for line in out.splitlines())


def pushed_outcome(server: Server, manifest: Manifest, commit: str) -> int:
    """git ignores a post-receive hook's exit status, so ask the server how it went."""
    status = server.release_json(["status", manifest.app])
    last = status.get("last_deploy") or {}
    if last.get("commit") == commit and last.get("outcome") == "ok":
        return EXIT_OK
    if last.get("commit") != commit:
        say(step(f"The server did not deploy {commit[:12]}", FAIL))
        say(f"      Run `tova deploy {manifest.env} --logs` or look at the push output above.")
    return EXIT_FAILED


# ---------------------------------------------------------------- plan
def cmd_plan_remote(project_dir: Path, manifest: Manifest) -> dict[str, Any]:
    """The server's view of a plan. Keys: contacted (True), deployed_version,
    deployed_commit (None when never deployed), changed_layers / unchanged_layers (layer
    names in run order), app_files_changed (files changed since the deployed commit, or
    None when the local repo lacks it)."""
    with _server(manifest) as server:
        probe = server.probe()
        # A fresh server has no toolkit yet: its plan is every layer, and what they install.
        apps = (server.release_json(["apps"]).get("apps") or []) if probe.toolkit else []
        capacity = {**_capacity_view(manifest, apps, probe), **_toolchain_view(server, probe, manifest.env)}
        if manifest.app not in {a.get("app") for a in apps}:
            return {"contacted": True, "deployed_version": None, "deployed_commit": None,
                    "changed_layers": list(LAYERS), "unchanged_layers": [], "app_files_changed": None,
                    **capacity}
        status = server.release_json(["status", manifest.app])
    old = Manifest.from_dict(status["manifest"]) if status.get("manifest") else None
    ports = status.get("ports") or None
    changed = changed_layers(old, manifest, ports, ports)
    # config.toml changed since the live release (tls, bun_version, ...): provisioned again.
    settings_changed = set(status.get("settings_changed") or [])
    changed = [name for name in LAYERS if name in changed or name in settings_changed]
    capacity["toolchain"]["tls_in_force"] = (status.get("settings") or {}).get("tls")
    deployed = status.get("commit")
    head = localgit.rev(project_dir, manifest.branch) or localgit.rev(project_dir, "HEAD")
    files = localgit.changed_files(project_dir, deployed, head) if deployed and head else None
    return {
        "contacted": True,
        "deployed_version": status.get("version"),
        "deployed_commit": deployed,
        "changed_layers": changed,
        "unchanged_layers": [name for name in LAYERS if name not in changed],
        "app_files_changed": files,
        **capacity,
    }


def _toolchain_view(server: Server, probe: Probe, env: str) -> dict[str, Any]:
    """The server's Bun and compiler versions and TLS mode, and how they compare with the
    local compiler. A server without the toolkit has no toolchain yet; its settings are
    read from the config.toml text the probe brought, by the server's own parser."""
    from tova.client.bootstrap import local_compiler_version
    from tova.settings import parse_settings

    found: dict[str, Any] = {}
    source = None  # where tls and bun_version come from: None, the server's defaults apply
    if probe.toolkit:
        found, source = server.release_json(["toolchain", "--check"]), "toolkit"
    elif probe.config_toml is not None:
        settings = parse_settings(probe.config_toml, server.renv.root)
        found, source = {"tls": settings.tls, "bun_version": settings.bun_version}, "config.toml"
    local = local_compiler_version()
    warning = None
    if local and found.get("compiler") and found["compiler"] != local:
        # Builds use the version --setup-git recorded there (the developer's, then).
        warning = (f"⚠ the server's Tova compiler is {found['compiler']}, yours {local}: "
                   f"`tova deploy {env} --setup-git` makes the server's builds use yours")
    return {"toolchain": {"bun": found.get("bun"), "compiler": found.get("compiler"), "local_compiler": local,
                          "tls": found.get("tls"), "bun_version": found.get("bun_version"), "warning": warning,
                          "settings": source}}


def _capacity_view(manifest: Manifest, apps: list[dict[str, Any]], probe: Probe) -> dict[str, Any]:
    """The plan's memory over-commit check and first-provisioning estimate."""
    commit = memory_commit(manifest, apps, probe.mem_total)
    first = first_provisioning(manifest, probe.installed)
    return {
        "memory": {"committed": commit.committed, "this_app": commit.this_app, "total": commit.total,
                   "warning": commit.warning()},
        "first_provisioning": {"disk_bytes": first.disk_bytes, "seconds": first.seconds,
                               "line": first.line()} if first.parts else None,
    }


_LAYER_LABELS = {
    "system": "system",
    "databases": "database",
    "app": "app bundle",
    "secrets": "secrets",
    "proxy": "Caddy config",
    "services": "services",
}


def format_plan_remote(d: dict[str, Any]) -> str:
    changed = list(d.get("changed_layers") or [])
    unchanged = [_LAYER_LABELS.get(n, n) for n in d.get("unchanged_layers") or [] if n != "app"]
    lines = []
    tc = d.get("toolchain") or {}
    server_side = None
    # (a server without the toolkit has no toolchain to report; its tls is on the Domain line)
    if tc.get("settings") != "config.toml" and (tc.get("compiler") or tc.get("tls")):
        server_side = (f"Server: Tova compiler {tc.get('compiler') or 'not installed'}, "
                       f"Bun {tc.get('bun') or 'not installed'}, TLS {_tls_line(tc)}")
    extra = [line for line in ((d.get("first_provisioning") or {}).get("line"),
                               (d.get("memory") or {}).get("warning"), server_side, tc.get("warning")) if line]
    if d.get("deployed_version") is None:
        lines.append("Not deployed yet: every layer runs")
        return "\n".join(lines + extra)
    if unchanged:
        lines.append("No changes from last deploy: " + ", ".join(unchanged))
    files = d.get("app_files_changed")
    app = "app bundle" + (f" ({files} file{'s' if files != 1 else ''})" if files is not None else "")
    labels = [app] + [_LAYER_LABELS.get(n, n) for n in changed if n != "app"]
    lines.append("Changed: " + ", ".join(labels))
    return "\n".join(lines + extra)


def _tls_line(tc: dict[str, Any]) -> str:
    """The TLS mode in force (the live release's), and config.toml's when it differs."""
    from tova.plan import TLS_NAMES

    configured, live = tc.get("tls"), tc.get("tls_in_force") or tc.get("tls")
    text = TLS_NAMES.get(live or "", live or "unknown")
    if configured and configured != live:
        text += f" (config.toml now says {TLS_NAMES.get(configured, configured)}: the next deploy applies it)"
    return text


# ---------------------------------------------------------------- status / list / logs
def cmd_status(project_dir: Path, manifest: Manifest, *, json: bool) -> int:
    """--json prints `tova-release status APP --json` unchanged: app, env, domain, ports,
    version, commit, branch, manifest, instances, databases, certificate, last_deploy,
    releases_kept, keep_releases."""
    with _server(manifest) as server:
        status = server.release_json(["status", manifest.app])
    say(jsonlib.dumps(status, indent=2, sort_keys=True) if json else screens.status_screen(status))
    return EXIT_OK


def cmd_list(server_target: str, *, json: bool) -> int:
    """--json prints `tova-release apps --json` unchanged: apps [{app, domain, version,
    instances, ports, state}], memory {used, total}, disk {used, total}, services."""
    target = Target.parse(server_target)
    with Server(target, None) as server:
        apps = server.release_json(["apps"])
    say(jsonlib.dumps(apps, indent=2, sort_keys=True) if json else screens.overview_screen(target.host, apps))
    return EXIT_OK


def cmd_logs(project_dir: Path, manifest: Manifest, *, since: str | None, instance: int | None, follow: bool,
             build: bool = False) -> int:
    """The app's journal (or, with build, the last build's compiler output), streamed
    straight to stdout: nothing is kept in memory, and `| head -1` ends it at once."""
    args = ["logs", manifest.app]
    if build:
        args.append("--build")
    # `--opt=VALUE`: one argument on the server whatever the value starts with (-2min).
    if since:
        args.append(f"--since={since}")
    if instance is not None:
        args.append(f"--instance={instance}")
    if follow:
        args.append("--follow")
    with _server(manifest) as server:
        return server.release_attached(args)


def cmd_ssh(project_dir: Path, manifest: Manifest) -> int:
    with _server(manifest) as server:
        return server.conn.interactive()


# ---------------------------------------------------------------- rollback / remove
def cmd_rollback(project_dir: Path, manifest: Manifest, *, to: str | None) -> int:
    args = ["rollback", manifest.app] + ([f"--to={to}"] if to else [])
    with _server(manifest) as server:
        server.connect()
        say(heading(f"Rolling back {manifest.app} on {server.display}..."))
        res = server.release(args, stream=True)
    return res.exit_code


def cmd_remove(project_dir: Path, manifest: Manifest, *, yes: bool) -> int:
    """Asks first unless yes; without a TTY and without --yes it refuses."""
    target = Target.parse(manifest.server)
    if not yes:
        if not _is_tty():
            raise TovaError(
                f"refusing to remove {manifest.app!r} without confirmation",
                hint=f"run `tova deploy {manifest.env} --remove --yes` to confirm",
            )
        answer = input(f'  Remove "{manifest.app}" from {target.host}? Its data is archived. [y/N] ')
        if answer.strip().lower() not in ("y", "yes"):
            say("  Nothing removed.")
            return EXIT_FAILED
    with Server(target, manifest.env) as server:
        result = server.release_json(["remove", manifest.app, "--yes"])
    say(screens.removal_screen(manifest.app, target.host, result))
    return EXIT_OK


# ---------------------------------------------------------------- env
def cmd_env(project_dir: Path, manifest: Manifest, action: str, args: list[str]) -> int:
    """list: names only (--json: {"names": [...]}); set KEY=value ... (values go to the
    server as JSON on stdin, never on a command line, never printed); unset KEY ..."""
    as_json = "--json" in args
    items = [a for a in args if a != "--json"]
    if action == "list":
        with _server(manifest) as server:
            names = server.release_json(["env", manifest.app, "list"]).get("names") or []
        if as_json:
            say(jsonlib.dumps({"names": names}))
        elif names:
            say(*names)
        else:
            say(f"  No secrets set for {manifest.app} ({manifest.env}).")
        return EXIT_OK
    if action == "set":
        values = read_values(items, manifest.env)
        with _server(manifest) as server:
            # The server says what it set and that it restarts the app (names only).
            server.release_ok(["env", manifest.app, "set"], stdin=jsonlib.dumps(values).encode(), stream=True)
        return EXIT_OK
    if action == "unset":
        if not items:
            raise TovaError("unset needs at least one name", hint=f"tova env {manifest.env} unset NAME")
        for name in items:
            check_name(name, manifest.env)
        with _server(manifest) as server:
            server.release_ok(["env", manifest.app, "unset", *items], stream=True)
        return EXIT_OK
    raise TovaError(f"unknown env action {action!r}", hint="use list, set or unset", exit_code=EXIT_USAGE)


def read_values(items: list[str], env: str, stdin: Any = None,
                prompt: Any = getpass.getpass) -> dict[str, str]:
    """`set`'s arguments: KEY=value, KEY (the value asked for at a hidden prompt) or a single
    KEY - (the value read from stdin): a secret need not be in shell history or `ps`."""
    stdin = stdin if stdin is not None else sys.stdin
    usage = f"tova env {env} set NAME (asks), NAME - (stdin) or NAME=value"
    if len(items) == 2 and items[1] == "-" and "=" not in items[0]:
        name = _plain_name(items[0], env, usage)
        value = stdin.read()
        return {name: value[:-1] if value.endswith("\n") else value}
    if not items:
        raise TovaError("set needs at least one name", hint=usage)
    values: dict[str, str] = {}
    for item in items:
        if "=" in item:
            values.update(parse_assignments([item], env))
            continue
        name = _plain_name(item, env, usage)
        if not (hasattr(stdin, "isatty") and stdin.isatty()):
            raise TovaError(f"no value for {name} and no terminal to ask for it",
                            hint=f"pipe it in: ... | tova env {env} set {name} -")
        values[name] = prompt(f"{name} (input hidden): ")
    return values


def _plain_name(item: str, env: str, usage: str) -> str:
    """A bare argument must be a variable name; never echo it otherwise (it may be a secret
    typed without its name)."""
    if not item or item[0].isdigit() or not set(item) <= _SECRET_NAME_CHARS:
        raise TovaError("each argument to set must be a NAME, NAME=value or NAME -", hint=usage)
    return item


def parse_assignments(items: list[str], env: str) -> dict[str, str]:
    """KEY=value arguments; the value is everything after the first `=`, verbatim."""
    if not items:
        raise TovaError("set needs at least one KEY=value", hint=f"tova env {env} set NAME=value")
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            # Never echo the argument: it may be a secret typed without its name.
            raise TovaError("each argument to set must look like KEY=value", hint=f"tova env {env} set NAME=value")
        check_name(name, env)
        values[name] = value
    return values


def check_name(name: str, env: str) -> str:
    if not name or name[0].isdigit() or not set(name) <= _SECRET_NAME_CHARS:
        raise TovaError(
            f"invalid variable name {name[:40]!r}",
            hint="names use letters, digits and _, and do not start with a digit",
        )
    return name
