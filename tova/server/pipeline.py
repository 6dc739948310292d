"""The deploy pipeline: one list of named steps run by the hook, `tova-release deploy` and
(through them) `tova deploy`:

    checkout, build, manifest, provision, release, switch, restart, verify, prune

Each step is idempotent and is a fault-injection point: TOVA_FAULT_INJECT=<step> makes the
process SIGKILL itself right before that step (used by the crash-safety tests only)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from dulwich.errors import ChecksumMismatch, NotGitRepository, ObjectMissing
from dulwich.repo import Repo

from tova.errors import ConfigError, DeployError, MissingSecretsError, TovaError
from tova.lang.sources import source_dir
from tova.manifest import Manifest, changed_layers
from tova.naming import build_user
from tova.server import deps, envfile, history, release_tree, releases, repack, safefs, sandbox, toolchain
from tova.server.assets import STATIC, arrange_static
from tova.server.atomic import flip_symlink, write_atomic
from tova.server.checkout import changed_files, checkout, commit_object
from tova.server.health import HealthResult, check, describe, probe_path, wait_for
from tova.server.layout import AppLayout, Layout
from tova.server.locks import deploy_lock
from tova.server.netstat import listening_ports
from tova.server.registry import Registry, allocate
from tova.server.system import System, read_current_manifest, read_release_manifest, unit
from tova.server.tooling import bun_binary
from tova.server.ui import Out
from tova.settings import ServerSettings

STEPS = ("checkout", "build", "manifest", "provision", "release", "switch", "restart", "verify", "prune")
ZERO = "0" * 40


def fault_point(step: str) -> None:
    if os.environ.get("TOVA_FAULT_INJECT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Deploy:
    """Everything one deploy knows, filled in step by step."""

    settings: ServerSettings
    layout: Layout
    app: AppLayout
    env: str
    repo: Repo
    system: System
    out: Out
    commit: bytes
    branch: str | None  # None: deploy whatever branch the manifest names (tova-release deploy)
    started: float = field(default_factory=time.time)
    workdir: Path | None = None
    checkout_dir: Path | None = None
    output_dir: Path | None = None
    manifest: Manifest | None = None
    old_manifest: Manifest | None = None
    old_commit: str | None = None
    previous: str | None = None  # the release `current` pointed at before this deploy
    old_ports: list[int] | None = None
    ports: list[int] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    files_changed: int | None = None
    version: str | None = None
    release_dir: Path | None = None
    build_owner: tuple[int, int] | None = None
    skipped: bool = False  # pushed branch is not the environment's
    deps_dir: Path | None = None  # the installed npm dependencies this release links
    deps_versions: dict[str, str] = field(default_factory=dict)

    @property
    def registry(self) -> Registry:
        return Registry(self.layout, self.settings.first_port, self.settings.lock_wait)


# --- the steps -------------------------------------------------------------------------

def step_checkout(d: Deploy) -> None:
    from tova.project import load_manifest

    d.app.build_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(d.app.build_dir, 0o700)
    d.workdir = Path(tempfile.mkdtemp(prefix="deploy-", dir=d.app.build_dir))
    d.checkout_dir = d.workdir / "src"
    # The checkout and everything the build makes belong to the app's build user: pushed
    # code never runs as root (see sandbox.py).
    d.build_owner = d.system.build_owner(d.app)
    home = sandbox.home_dir(d.workdir)
    home.mkdir(mode=0o700)
    for path in (d.workdir, home):
        _give_to_build_user(d, path)
    checkout(d.repo, commit_object(d.repo, d.commit), d.checkout_dir, owner=d.build_owner)
    # The branch that deploys is named in the pushed commit's own deploy block.
    # The app's name is the one recorded with this repository at --setup-git, never
    # derived from the checkout's folder (load_manifest refuses a tova.toml naming another).
    d.manifest = load_manifest(d.checkout_dir, d.env, project_relative=True, recorded_app=d.app.name)
    if d.branch is None:
        d.branch = d.manifest.branch
    elif d.branch != d.manifest.branch:
        d.out.info(f"Not deploying {d.branch}: the {d.env} deploy block deploys branch {d.manifest.branch}")
        d.skipped = True


def run_pushed_tool(d: Deploy, argv: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> int:
    """THE way to run tooling on pushed code (compiler, dependency installer): as the app's
    build user in the build sandbox, cwd the checkout, writing only in the deploy's work
    directory, its output passed on to the pusher. Its exit status."""
    assert d.workdir and d.checkout_dir
    run = sandbox.ToolRun(argv=argv, cwd=cwd, workdir=d.workdir, user=build_user(d.app.name),
                          env=env or {}, unit=f"tova-build-{d.app.name}-{secrets.token_hex(4)}")
    try:
        return d.system.run_tool(run, d.out.passthrough)
    except OSError as exc:
        raise DeployError(f"cannot run {what} {argv[0]!r}: {exc.strerror}",
                          hint="install it, or set it in the server's config.toml") from None


def _give_to_build_user(d: Deploy, path: Path) -> None:
    """A fresh directory (root's) for the build user to write in."""
    if d.build_owner is not None:
        os.chown(path, *d.build_owner, follow_symlinks=False)


def _seal(path: Path, gid: int) -> None:
    release_tree.seal(path, gid)


def app_gid(d: Deploy) -> int:
    """The group that may read the app's releases: the app user's (this process's in a test root)."""
    owner = d.system.app_owner(d.app)
    return owner[1] if owner else os.getgid()


def step_build(d: Deploy) -> None:
    assert d.workdir and d.checkout_dir and d.manifest
    d.output_dir = d.workdir / "out"
    # Bun and the compiler before the first build (a fresh server has neither).
    toolchain.ensure(d.settings, d.out.passthrough)
    argv = [*toolchain.compiler_argv(d.settings), "build", str(source_dir(d.checkout_dir)),
            "--production", "--output", str(d.output_dir)]
    d.out.begin("Compiling .tova files...")
    try:
        rc = run_pushed_tool(d, argv, d.checkout_dir, "the compiler")
    except DeployError:
        d.out.end(False)
        raise
    if rc != 0:
        d.out.end(False)
        raise DeployError(f"the build failed (compiler exit status {rc}); nothing was deployed",
                          hint="fix the errors above and push again")
    _ensure_server_js(d.output_dir)
    d.out.end(True)
    _install_dependencies(d)


def _install_dependencies(d: Deploy) -> None:
    """The npm packages the server imports, installed now (cached per dependency set)."""
    assert d.checkout_dir and d.output_dir and d.manifest
    spec = deps.dependency_spec(d.checkout_dir, d.output_dir, d.manifest.app, d.settings.bun_version)
    if spec is None:
        return
    d.out.begin("Installing npm dependencies...")
    assert d.workdir
    work = d.workdir / "deps"  # the build user's, like the checkout; root takes it once done
    try:
        d.deps_dir, d.deps_versions, reused = deps.install(
            spec, d.app, bun_binary(), lambda argv, cwd: run_pushed_tool(d, argv, cwd, "the installer"),
            work=work, prepare=lambda path: _give_to_build_user(d, path),
            seal=lambda path: _seal(path, app_gid(d)))
    except DeployError:
        d.out.end(False)
        raise
    d.out.end(True)
    listed = ", ".join(f"{k} {v}" for k, v in sorted(d.deps_versions.items()))
    d.out.sub(("Dependencies unchanged: " if reused else "Dependencies: ") + listed)


def _ensure_server_js(out: Path) -> None:
    """The production build's entry: `server.js` importing the hashed `server.<hash>.js`."""
    if not out.is_dir() or out.is_symlink():
        raise DeployError("the build produced no output directory",
                          hint="the compiler writes its output to the --output directory")
    if not (out / "server.js").is_file():
        raise DeployError("the build produced no server.js",
                          hint="the app needs a server { } block; the service runs the production build's server.js")


def step_manifest(d: Deploy) -> None:
    assert d.manifest
    d.out.info("Analyzing changes...")
    d.previous = d.app.current_version()
    d.old_manifest = read_current_manifest(d.app)
    meta = _release_meta(d.app.current)
    d.old_commit = meta.get("commit")
    d.files_changed = changed_files(d.repo, d.old_commit.encode() if d.old_commit else None, d.commit)


def _release_meta(release_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((release_dir / ".tova-manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def step_provision(d: Deploy) -> None:
    from tova.render import render_all

    m = d.manifest
    assert m
    with d.registry.transaction() as data:
        for name, entry in data["apps"].items():
            if name != m.app and entry.get("domain") == m.domain:
                raise ConfigError(f"domain {m.domain} is already served by app {name!r} on this server",
                                  hint="use another domain, or remove that app first")
        entry = data["apps"].get(m.app)
        d.old_ports = list(entry["ports"]) if entry and entry.get("ports") else None
        d.ports = allocate(data, m.app, m.instances, d.settings.first_port, avoid=_ports_in_use(m))
        entry = data["apps"][m.app]
        entry.update({"domain": m.domain, "env": m.env})
        entry.setdefault("version", None)
    old_ports = d.old_ports if d.old_manifest is not None else None
    d.layers = changed_layers(d.old_manifest, m, old_ports, d.ports)
    if d.app.health_script.exists() and "services" not in d.layers:
        # Provisioned by a version with a health timer per app: the services layer
        # replaces it with the server-wide watcher.
        d.layers.append("services")
    if d.layers:
        d.out.sub("Infrastructure: " + ", ".join(d.layers) + (" (first deploy)" if d.old_manifest is None else ""))
    else:
        d.out.sub("Infrastructure: no changes")
    if d.files_changed is not None:
        d.out.sub(f"App: {d.files_changed} file{'s' if d.files_changed != 1 else ''} changed")

    d.app.data.mkdir(parents=True, exist_ok=True)
    envfile.ensure(d.app.env_file)
    missing = envfile.missing(d.app.env_file, m.secrets.required)
    if missing:
        raise MissingSecretsError(missing, d.env)

    files = render_all(m, d.ports, d.settings)
    write_atomic(d.app.provision_script, files["provision.sh"], mode=0o700)
    if not d.layers:
        return
    d.out.begin("Provisioning " + ", ".join(d.layers) + "...")
    rc = d.system.provision(d.app.provision_script, d.layers, _Passthrough(d.out))
    d.out.end(rc == 0)
    if rc == 3:
        raise MissingSecretsError(envfile.missing(d.app.env_file, m.secrets.required) or ["(see above)"], d.env)
    if rc != 0:
        raise DeployError(f"provisioning failed (exit status {rc}); nothing was switched",
                          hint=f"read {d.app.provision_script} and the output above")


def _ports_in_use(m: Manifest) -> set[int]:
    """Ports a new instance must not take: whatever listens now, and the ports of the
    databases this app declares (their server may not be installed yet)."""
    db_ports = {db.port for db in m.databases if db.port}
    return listening_ports() | db_ports


class _Passthrough:
    """A file-like that feeds provision.sh output into the progress lines."""

    def __init__(self, out: Out) -> None:
        self.out = out

    def write(self, text: str) -> None:
        for line in text.splitlines():
            self.out.passthrough(line)

    def flush(self) -> None:
        pass


def step_release(d: Deploy) -> None:
    assert d.manifest and d.output_dir and d.checkout_dir
    d.version = releases.next_version(d.app)
    d.out.begin(f"Deploying app ({d.version})...")
    staged = releases.staging_dir(d.app, d.version)
    d.output_dir.rename(staged)
    _copy_data_files(d)  # before public/ moves: a data file may live under it
    served = arrange_static(staged, d.checkout_dir / "public")
    # Root takes the build user's output: owned by root, explicit modes, no way out.
    release_tree.seal(staged, app_gid(d), public=(STATIC,))
    if d.deps_dir is not None:
        deps.link(staged, d.deps_dir)  # root's own link to the app's shared install
    meta = d.manifest.to_dict()
    meta.update({
        "version": d.version,
        "commit": d.commit.decode(),
        "branch": d.branch,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "previous_commit": d.old_commit,
        "files_changed": d.files_changed,
        "static_files": len(served),
        "dependencies": d.deps_versions,
        "dependency_set": d.deps_dir.name if d.deps_dir else None,
    })
    write_atomic(staged / ".tova-manifest.json", json.dumps(meta, indent=2, sort_keys=True) + "\n", mode=0o640)
    os.chown(staged / ".tova-manifest.json", 0 if os.geteuid() == 0 else -1, app_gid(d))
    d.release_dir = releases.publish(d.app, staged, d.version)
    d.out.end(True)


def _copy_data_files(d: Deploy) -> None:
    assert d.manifest and d.checkout_dir
    root = d.checkout_dir.resolve()
    owner = d.system.app_owner(d.app)
    for rel in d.manifest.data_files:
        src = (d.checkout_dir / rel).resolve()
        if root not in src.parents or not src.is_file():
            raise DeployError(f"data file {rel!r} is not a file inside the project",
                              hint="data sources read files from the project directory")
        # data/ is the app's: never follow what it may have planted there.
        safefs.write_in(d.app.data, os.path.normpath(rel), src.read_bytes(), owner)


def step_switch(d: Deploy) -> None:
    flip_symlink(d.app.current, f"releases/{d.version}")


def step_restart(d: Deploy) -> None:
    assert d.manifest
    for port in sorted(set(d.old_ports or []) - set(d.ports)):
        d.system.stop_instance(d.app, port)  # the app shrank
    d.out.begin("Restarting services...")
    failure = restart_all(d.system, d.app, d.ports, d.manifest, d.settings)
    d.out.end(failure is None)
    if failure is not None:
        port, result = failure
        d.out.step(f"Health check {probe_path(d.manifest.health)}...", False, "FAILED")
        d.out.sub(f"{unit(d.app.name, port)}: {result.detail}")
        raise _HealthFailed()


def restart_all(system: System, app: AppLayout, ports: list[int], manifest: Manifest,
                settings: ServerSettings) -> tuple[int, HealthResult] | None:
    """Restart one instance at a time, each healthy before the next. The first failure."""
    for port in ports:
        system.restart_instance(app, port)
        result = wait_for(port, manifest.health, settings.startup_deadline,
                          alive=partial(system.instance_running, app, port))
        if not result.ok:
            return port, result
    # Caddy's active health checks may have seen an instance down while it restarted
    # (or before a first start) and would keep it out for a whole health_interval:
    # a reload starts its checks afresh, on instances now known to be healthy.
    system.reload_proxy()
    return None


def switch_to(version: str, was: str | None, system: System, app: AppLayout, ports: list[int],
              manifest: Manifest, settings: ServerSettings, registry: Registry,
              out: Out) -> tuple[int, HealthResult] | None:
    """Point `current` at an existing release, restart onto it and record it as the app's
    version: the shared part of an automatic and a manual rollback. The first failure."""
    flip_symlink(app.current, f"releases/{version}")
    out.sub(f"current → releases/{version} (was {was or 'none'})", True)
    failure = restart_all(system, app, ports, manifest, settings)
    out.sub("Services restarted", True)
    out.sub("Health check " + ("passed" if failure is None else "failed"), failure is None)
    with registry.transaction() as data:
        if app.name in data["apps"]:
            data["apps"][app.name]["version"] = version
    return failure


def step_verify(d: Deploy) -> None:
    assert d.manifest
    for port in d.ports:
        result = check(port, d.manifest.health)
        if not result.ok:
            d.out.step(f"Health check {probe_path(d.manifest.health)}...", False, "FAILED")
            d.out.sub(f"{unit(d.app.name, port)}: {result.detail}")
            raise _HealthFailed()
    d.out.step("Health check passed", True)
    if d.manifest.health.fallback:
        text = describe(d.manifest.health)
        d.out.sub(text[0].upper() + text[1:])
        d.out.sub(f'Add route GET "{d.manifest.health.path}" (or set health:) for a strict check')
    with d.registry.transaction() as data:
        data["apps"][d.app.name]["version"] = d.version


def step_prune(d: Deploy) -> None:
    assert d.manifest
    releases.prune(d.app, d.manifest.keep_releases, d.version)
    in_use = {r.meta().get("dependency_set") for r in releases.listing(d.app)}
    deps.prune(d.app, {k for k in in_use if k})


class _HealthFailed(Exception):
    pass


# --- running the steps -----------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    status: str  # "ok" | "skipped" | "rolled_back" | "failed"
    version: str | None = None
    exit_code: int = 0


def deploy(settings: ServerSettings, layout: Layout, app: AppLayout, env: str, repo: Repo,
           system: System, out: Out, commit: bytes, branch: str | None) -> Outcome:
    """Run the whole pipeline for one commit under the app's deploy lock."""
    with deploy_lock(app, settings.lock_wait, what=f"deploy of {commit.decode()[:12]}", notify=out.info):
        releases.clean_leftovers(app)  # half-made work of a deploy that died
        d = Deploy(settings, layout, app, env, repo, system, out, commit, branch)
        try:
            return _run(d)
        finally:
            if d.workdir is not None:
                shutil.rmtree(d.workdir, ignore_errors=True)
            _pack_repo(app, out)


def _pack_repo(app: AppLayout, out: Out) -> None:
    """Pack repo.git from time to time (under the deploy lock: no other deploy reads it)."""
    try:
        packed = repack.pack_if_needed(app.repo)
    except (OSError, ValueError, ChecksumMismatch, NotGitRepository, ObjectMissing) as exc:
        # A full disk or a damaged object must not turn a finished deploy into a failure.
        out.info(f"Could not pack {app.repo}: {exc}")
        return
    if packed is not None:
        out.info(f"Packed the repository ({packed.loose} loose objects, {packed.packs} packs)")


def _run(d: Deploy) -> Outcome:
    step = "checkout"
    try:
        for step in STEPS:
            fault_point(step)
            globals()[f"step_{step}"](d)
            if d.skipped:
                return Outcome("skipped")
    except _HealthFailed:
        return _roll_back(d)
    except TovaError as err:
        _record(d, "failed", step, error=err.message)
        if d.version and d.release_dir:
            releases.mark_failed(d.release_dir, f"failed at {step}: {err.message}")
        raise
    _record(d, "ok", None)
    assert d.manifest
    d.out.line()
    d.out.line(f"{d.out.ok_mark} Live at https://{d.manifest.domain} ({d.version})")
    return Outcome("ok", d.version)


def _roll_back(d: Deploy) -> Outcome:
    assert d.manifest and d.release_dir and d.version
    releases.mark_failed(d.release_dir, "health check failed")
    target = releases.get(d.app, d.previous) if d.previous else None
    out = d.out
    out.line()
    if target is None or target.failed:
        out.line("⚠ Health check failed and there is no earlier release to roll back to.")
        for port in d.ports:
            d.system.stop_instance(d.app, port)
        d.app.current.unlink(missing_ok=True)
        out.sub("Instances stopped", True)
        _record(d, "failed", "verify", error="health check failed; nothing to roll back to")
        out.line()
        out.line(f"{out.fail_mark} Deploy failed. Nothing to roll back to: {d.app.name} is stopped.")
        out.line(f"  Run `tova deploy {d.env} --logs` to investigate.")
        return Outcome("failed", d.version, 1)
    out.line("⚠ Health check failed, rolling back...")
    manifest = read_release_manifest(target.path) or d.manifest
    failure = switch_to(target.version, d.version, d.system, d.app, d.ports, manifest, d.settings,
                        d.registry, out)
    _record(d, "rolled_back", "verify", error="health check failed", rolled_back_to=target.version)
    out.line()
    if failure is None:
        out.line(f"{out.fail_mark} Deploy failed. Rolled back to {target.version}.")
    else:
        out.line(f"{out.fail_mark} Deploy failed. Rolled back to {target.version}, which is not healthy either.")
    out.line(f"  Run `tova deploy {d.env} --logs` to investigate.")
    return Outcome("rolled_back", target.version, 1)


def _record(d: Deploy, outcome: str, step: str | None, **extra: Any) -> None:
    record = {
        "version": d.version,
        "commit": d.commit.decode(),
        "branch": d.branch,
        "start": d.started,
        "end": time.time(),
        "outcome": outcome,
        "step": step,
        "infra_changed": d.layers,
        **extra,
    }
    history.append(d.app.history, record)
