"""The deploy pipeline: one sequence of named steps run by the hook, `tova-release deploy`
and (through them) `tova deploy`. `_run` calls them in this order, top to bottom:

    checkout   write the pushed commit's tree into a work directory
    manifest   read the project there: the manifest this deploy installs
    dependencies  install the project's npm packages and its database driver (cached
               per set) before the build: the compiler bundles browser npm imports
    build      compile it with the Tova compiler (production build; Bun and the compiler
               are installed first when the server has none), node_modules readable
    plan       compare with the live release: ports, changed layers, the secrets gate
    provision  render the server files and run provision.sh for the changed layers
    release    move the build into releases/vN (complete before it gets its name)
    switch     point `current` at it
    restart    restart the instances one at a time, each healthy before the next
    verify     check every instance once more and record the version
    prune      delete old releases beyond keep_releases

Each step is idempotent and is a fault-injection point: TOVA_FAULT_INJECT=<step> makes the
process SIGKILL itself right before that step (used by the crash-safety tests only; see
tova.server.faults). Whatever a killed deploy leaves, the next command repairs
(tova.server.repair, called right after the lock is taken)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from dulwich.errors import ChecksumMismatch, NotGitRepository, ObjectMissing
from dulwich.refs import Ref
from dulwich.repo import Repo

from tova.errors import ConfigError, DeployError, MissingSecretsError, TovaError, disk_full
from tova.lang.sources import source_dir
from tova.layout import STATIC, AppLayout, Layout
from tova.manifest import LAYERS, MANIFEST_FILE, Manifest, changed_layers, describe, probe_path
from tova.naming import build_user, pg_database, unit, upstreams_srv
from tova.progress import Out, OutputLines
from tova.server import (
    deps,
    envfile,
    history,
    perms,
    release_tree,
    releases,
    repack,
    safefs,
    sandbox,
    system_layer,
    toolchain,
)
from tova.server.assets import arrange_static
from tova.server.atomic import flip_symlink, write_atomic
from tova.server.buildlog import BuildOutput
from tova.server.checkout import changed_files, checkout, commit_object
from tova.server.faults import fault_point
from tova.server.health import check
from tova.server.locks import deploy_lock
from tova.server.registry import Registry, claim_database, fresh_ports
from tova.server.repair import repair
from tova.server.rollout import Failure, ports_in_use, report_failure, reprovision, restart_all, switch_to
from tova.server.system import System
from tova.server.tooling import bun_binary
from tova.settings import ServerSettings, compiler_argv, provisioned, settings_layers

STEPS = ("checkout", "manifest", "dependencies", "build", "plan", "provision", "release", "switch",
         "restart", "verify", "prune")
ZERO = "0" * 40


@dataclass(frozen=True)
class Context:
    """What a deploy is started with; no step changes it."""

    settings: ServerSettings
    layout: Layout
    app: AppLayout
    env: str
    repo: Repo
    system: System
    out: Out
    commit: bytes

    @property
    def registry(self) -> Registry:
        return Registry(self.layout, self.settings.first_port, self.settings.lock_wait)


@dataclass
class Trail:
    """How far a deploy got: what its history record and its failure paths need."""

    branch: str | None  # None until the manifest names it (tova-release deploy)
    started: float = field(default_factory=time.time)
    step: str = STEPS[0]
    layers: list[str] = field(default_factory=list)
    version: str | None = None
    release_dir: Path | None = None

    def enter(self, step: str) -> None:
        self.step = step
        fault_point(step)


@dataclass(frozen=True)
class Workspace:
    """The deploy's work directory: the checkout, and what the build makes beside it. The
    app's build user owns it (pushed code never runs as root; see sandbox.py)."""

    dir: Path
    source: Path
    build_owner: tuple[int, int] | None  # None: a test root, where we are that user


@dataclass(frozen=True)
class Plan:
    """The plan step's answer: what this deploy changes on the server."""

    previous: str | None  # the release `current` pointed at before this deploy
    old_commit: str | None
    files_changed: int | None
    old_ports: list[int] | None  # the instances serving now
    ports: list[int]  # for rendering only: the rollout picks the new instances' ports
    layers: list[str]


@dataclass(frozen=True)
class Build:
    """The build step's answer: the compiler's output, the toolchain that made it and the
    npm packages the release links (None: the server imports none)."""

    output: Path
    toolchain: toolchain.Toolchain
    dependencies: Dependencies | None


@dataclass(frozen=True)
class Dependencies:
    """The dependencies step's answer: the installed npm packages a release links, and
    their copy the compiler reads (deps.build_copy)."""

    dir: Path
    versions: dict[str, str]
    key: str
    for_build: Path


@dataclass(frozen=True)
class Outcome:
    status: str  # "ok" | "skipped" | "rolled_back" | "failed"
    version: str | None = None
    exit_code: int = 0


class _HealthFailed(Exception):
    def __init__(self, failure: Failure | None = None) -> None:
        super().__init__("health check failed")
        self.failure = failure


# --- running the steps -----------------------------------------------------------------

def deploy(settings: ServerSettings, layout: Layout, app: AppLayout, env: str, repo: Repo,
           system: System, out: Out, commit: bytes, branch: str | None) -> Outcome:
    """Run the whole pipeline for one commit under the app's deploy lock."""
    with deploy_lock(app, settings.lock_wait, what=f"deploy of {commit.decode()[:12]}", notify=out.info):
        releases.clean_leftovers(app)  # half-made work of a deploy that died
        repair(settings, layout, app, system, out)  # and what it left running or unrecorded
        commit = _branch_head(repo, branch, commit, out)
        if branch is not None and releases.read_meta(app.current).get("commit") == commit.decode() \
                and releases.read_meta(app.current).get("branch") == branch:
            out.info(f"{commit.decode()[:12]}, the head of {branch}, is live already: nothing to deploy")
            return Outcome("skipped")
        ctx = Context(settings, layout, app, env, repo, system, out, commit)
        trail = Trail(branch)
        app.build_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(app.build_dir, 0o700)
        workdir = None
        try:
            workdir = Path(tempfile.mkdtemp(prefix="deploy-", dir=app.build_dir))
            return _run(ctx, trail, workdir)
        except OSError as exc:
            full = disk_full(exc, f" (at step {trail.step}; " + (
                "nothing was switched)" if trail.step in STEPS[:STEPS.index("switch")]
                else "the next command finishes or undoes the switch)"))
            if full is None:
                raise
            # What this deploy wrote is most likely what filled the disk: free it first,
            # so that its history record fits.
            releases.clean_leftovers(app)
            _record_failure(ctx, trail, full)
            raise full from None
        except TovaError as err:
            _record_failure(ctx, trail, err)
            raise
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            _pack_repo(app, out)


def _branch_head(repo: Repo, branch: str | None, commit: bytes, out: Out) -> bytes:
    """Pushes queue on the deploy lock in no particular order: a push that waited deploys
    what its branch points at now, so once concurrent pushes settle the live release is
    the branch head (never an older commit that got the lock last)."""
    if branch is None:
        return commit
    try:
        head = repo.refs[Ref(b"refs/heads/" + branch.encode())]
    except KeyError:
        return commit
    if head != commit:
        out.info(f"{branch} moved on to {head.decode()[:12]} while this push waited: deploying that")
    return head


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


def _run(ctx: Context, trail: Trail, workdir: Path) -> Outcome:
    """The steps in order; each one's result is the next ones' input."""
    trail.enter("checkout")
    ws = step_checkout(ctx, workdir)
    trail.enter("manifest")
    manifest = step_manifest(ctx, ws.source)
    if trail.branch is not None and trail.branch != manifest.branch:
        ctx.out.info(f"Not deploying {trail.branch}: the {ctx.env} deploy block deploys branch {manifest.branch}")
        return Outcome("skipped")
    trail.branch = manifest.branch
    trail.enter("dependencies")
    dependencies = step_dependencies(ctx, ws, manifest)
    trail.enter("build")
    build = step_build(ctx, ws, manifest, dependencies)
    trail.enter("plan")
    plan = step_plan(ctx, manifest)
    trail.layers = plan.layers
    trail.enter("provision")
    step_provision(ctx, manifest, plan)
    trail.enter("release")
    trail.version = releases.next_version(ctx.app)
    trail.release_dir = step_release(ctx, manifest, ws, build, plan, trail.branch,
                                     trail.version)
    try:
        trail.enter("switch")
        step_switch(ctx, trail.version)
        trail.enter("restart")
        ports = step_restart(ctx, manifest)
        trail.enter("verify")
        step_verify(ctx, manifest, ports, trail.version)
    except _HealthFailed:
        return _roll_back(ctx, trail, manifest, plan, trail.release_dir)
    trail.enter("prune")
    step_prune(ctx, manifest, trail.version)
    _record(ctx, trail, "ok", None)
    ctx.out.line()
    ctx.out.line(f"{ctx.out.ok_mark} Live at https://{manifest.domain} ({trail.version})")
    return Outcome("ok", trail.version)


# --- the steps, in the order _run calls them -------------------------------------------

def step_checkout(ctx: Context, workdir: Path) -> Workspace:
    """The pushed commit's tree, written into `workdir`/src as the app's build user's."""
    ws = Workspace(workdir, workdir / "src", ctx.system.build_owner(ctx.app))
    home = sandbox.home_dir(workdir)
    home.mkdir(mode=0o700)
    for path in (workdir, home):
        _give_to_build_user(ws, path)
    checkout(ctx.repo, commit_object(ctx.repo, ctx.commit), ws.source, owner=ws.build_owner)
    return ws


def run_pushed_tool(ctx: Context, ws: Workspace, argv: list[str], cwd: Path, what: str,
                    env: dict[str, str] | None = None,
                    passthrough: Callable[[str], None] | None = None,
                    read_only: tuple[Path, ...] = ()) -> int:
    """THE way to run tooling on pushed code (compiler, dependency installer): as the app's
    build user in the build sandbox, cwd the checkout, writing only in the deploy's work
    directory, its output passed on to the pusher. Its exit status."""
    run = sandbox.ToolRun(argv=argv, cwd=cwd, workdir=ws.dir, user=build_user(ctx.app.name),
                          env=env or {}, read_only=read_only, unit=f"tova-build-{ctx.app.name}-{secrets.token_hex(4)}")
    try:
        return ctx.system.run_tool(run, passthrough or ctx.out.passthrough)
    except OSError as exc:
        raise DeployError(f"cannot run {what} {argv[0]!r}: {exc.strerror}",
                          hint="install it, or set it in the server's config.toml") from None


def _give_to_build_user(ws: Workspace, path: Path) -> None:
    """A fresh directory (root's) for the build user to write in."""
    if ws.build_owner is not None:
        os.chown(path, *ws.build_owner, follow_symlinks=False)


def _seal(path: Path, gid: int) -> None:
    release_tree.seal(path, gid)


def _deps_gid(ctx: Context) -> int:
    """The app's group once provisioning made its user; root's on a first deploy, when the
    release step hands the install to the app's group (see _deps_for_app)."""
    try:
        return app_gid(ctx)
    except TovaError:
        return 0


def _deps_for_app(ctx: Context, deps_dir: Path) -> None:
    gid = app_gid(ctx)
    if deps_dir.stat().st_gid != gid:
        release_tree.seal(deps_dir, gid)


def app_gid(ctx: Context) -> int:
    """The group that may read the app's releases: the app user's (this process's in a test root)."""
    owner = ctx.system.app_owner(ctx.app)
    return owner[1] if owner else os.getgid()


def step_manifest(ctx: Context, source: Path) -> Manifest:
    """The manifest the checked-out project asks for (its deploy block names the branch):
    the one the pre-receive check read from this commit, else read here."""
    from tova.server import prechecked

    if (kept := prechecked.take(ctx.app, ctx.commit.decode(), ctx.env)) is not None:
        return kept
    from tova.loader import load_manifest

    # The app's name is the one recorded with this repository at --setup-git, never
    # derived from the checkout's folder (load_manifest refuses a tova.toml naming another).
    return load_manifest(source, ctx.env, project_relative=True, recorded_app=ctx.app.name)


def step_dependencies(ctx: Context, ws: Workspace, manifest: Manifest) -> Dependencies | None:
    """The npm packages the project declares (with its database engines' drivers),
    installed before the build (cached per set); None when it declares none: then only the
    server bundle's imports are installed, after the build (_server_dependencies)."""
    if not deps.declares_any(ws.source):
        return None
    drivers = deps.engine_packages([d.engine for d in manifest.databases])
    spec = deps.dependency_spec(ws.source, drivers, manifest.app, ctx.settings.bun_version)
    if spec is None:  # (it declares some: never)
        return None
    toolchain.ensure(ctx.settings, ctx.out.passthrough, env=ctx.env)  # Bun, on a fresh server
    return _install_dependencies(ctx, ws, spec)


def _install_dependencies(ctx: Context, ws: Workspace, spec: deps.DepSpec) -> Dependencies:
    ctx.out.begin("Installing npm dependencies...")
    work = ws.dir / ("deps-" + spec.key)  # the build user's, like the checkout; root takes it once done
    try:
        deps_dir, versions, reused = deps.install(
            spec, ctx.app, bun_binary(), lambda argv, cwd: run_pushed_tool(ctx, ws, argv, cwd, "the installer"),
            work=work, prepare=lambda path: _give_to_build_user(ws, path),
            seal=partial(_seal, gid=_deps_gid(ctx)))
        build_gid = ws.build_owner[1] if ws.build_owner else os.getgid()
        for_build = deps.build_copy(deps_dir, partial(_seal, gid=build_gid))
    except DeployError:
        ctx.out.end(False)
        raise
    ctx.out.end(True)
    listed = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    ctx.out.sub(("Dependencies unchanged: " if reused else "Dependencies: ") + listed)
    return Dependencies(deps_dir, versions, spec.key, for_build)


def step_build(ctx: Context, ws: Workspace, manifest: Manifest, dependencies: Dependencies | None) -> Build:
    """The compiler's production build of the project (the dependencies in its
    node_modules, read-only): its output directory, the versions of the compiler and Bun
    that made it, and the npm packages its server needs."""
    output = ws.dir / "out"
    # Bun and the compiler before the first build (a fresh server has neither).
    found = toolchain.ensure(ctx.settings, ctx.out.passthrough, env=ctx.env)
    argv = [*compiler_argv(ctx.settings), "build", str(source_dir(ws.source)),
            "--production", "--output", str(output)]
    # Locations relative to the project, warnings summarised, the whole output kept.
    build = BuildOutput(ctx.out.passthrough, ctx.out.journal or (lambda line: None),
                        roots=(str(ws.source), str(ws.source.resolve())))
    # The compiler resolves npm imports from a node_modules in or above the sources; a
    # project that commits its own keeps it.
    modules = ws.source / "node_modules"
    linked = dependencies is not None and not os.path.lexists(modules)
    if linked:
        assert dependencies is not None
        os.symlink(dependencies.for_build, modules)
    ctx.out.begin("Compiling .tova files...")
    try:
        rc = run_pushed_tool(ctx, ws, argv, ws.source, "the compiler", passthrough=build.feed,
                             read_only=(dependencies.for_build,) if dependencies else ())
    except DeployError:
        ctx.out.end(False)
        raise
    finally:
        write_atomic(ctx.app.build_log, build.text(), mode=0o600, durable=False)  # a log: no fsync
        if linked:
            modules.unlink(missing_ok=True)
    if rc != 0:
        ctx.out.end(False)
        hint = "fix the errors above and push again"
        if any(".tmp-bundle" in line for line in build.lines):
            # The compiler bundles a browser block's npm imports: only declared ones are installed.
            hint = ("a browser block's npm import must be declared in tova.toml's [npm] "
                    "(or package.json) so that it is installed before the build")
        raise DeployError(f"the build failed (compiler exit status {rc}); nothing was deployed", hint=hint)
    _ensure_server_js(output)
    ctx.out.end(True)
    if summary := build.summary(ctx.env):
        ctx.out.sub(summary)
    return Build(output, found, _server_dependencies(ctx, ws, manifest, output, dependencies))


def _server_dependencies(ctx: Context, ws: Workspace, manifest: Manifest, output: Path,
                         installed: Dependencies | None) -> Dependencies | None:
    """What the built server imports must be installed: the set installed before the build
    when it has them all (the usual case); else the complete set now."""
    drivers = deps.engine_packages([d.engine for d in manifest.databases]) if installed else []
    spec = deps.dependency_spec(ws.source, [*drivers, *deps.server_imports(output)], manifest.app,
                                ctx.settings.bun_version)
    if spec is None or (installed is not None and installed.key == spec.key):
        return installed
    return _install_dependencies(ctx, ws, spec)


def _ensure_server_js(out: Path) -> None:
    """The production build's entry: `server.js` importing the hashed `server.<hash>.js`."""
    if not out.is_dir() or out.is_symlink():
        raise DeployError("the build produced no output directory",
                          hint="the compiler writes its output to the --output directory")
    if not (out / "server.js").is_file():
        raise DeployError("the build produced no server.js",
                          hint="the app needs a server { } block; the service runs the production build's server.js")


def step_plan(ctx: Context, manifest: Manifest) -> Plan:
    """Compare with the live release: ports (recorded in the registry), the layers that
    changed, and the secrets gate (nothing is provisioned while one is missing)."""
    ctx.out.info("Analyzing changes...")
    previous = ctx.app.current_version()
    old_manifest = releases.current_manifest(ctx.app)
    old_commit = releases.read_meta(ctx.app.current).get("commit")
    files_changed = changed_files(ctx.repo, old_commit.encode() if old_commit else None, ctx.commit)
    old_ports, ports = _allocate_ports(ctx, manifest)
    layers = changed_layers(old_manifest, manifest)
    if old_manifest is not None:  # config.toml changes (tls, bun_version, ...) apply too
        extra = settings_layers(releases.read_meta(ctx.app.current).get("settings"), ctx.settings)
        layers = [name for name in LAYERS if name in extra or name in layers]
    if ctx.app.health_script.exists() and "services" not in layers:
        # Provisioned by a version with a health timer per app: the services layer
        # replaces it with the server-wide watcher.
        layers.append("services")
    if old_manifest is not None and "proxy" not in layers and _static_upstreams(ctx.layout, ctx.app.name):
        # Provisioned by a version whose Caddy site listed the ports: the rollout moves
        # the app to new ones, which Caddy must learn from tova-upstreams.
        layers = [name for name in LAYERS if name in layers or name == "proxy"]
    if layers:
        ctx.out.sub("Infrastructure: " + ", ".join(layers) + (" (first deploy)" if old_manifest is None else ""))
    else:
        ctx.out.sub("Infrastructure: no changes")
    if files_changed is not None:
        ctx.out.sub(f"App: {files_changed} file{'s' if files_changed != 1 else ''} changed")
    _check_secrets(ctx, manifest)
    return Plan(previous, old_commit, files_changed, old_ports, ports, layers)


def _static_upstreams(layout: Layout, app: str) -> bool:
    """The app's Caddy site names its instances itself instead of asking tova-upstreams."""
    try:
        site = layout.caddy_app(app).read_text()
    except OSError:
        return False
    return upstreams_srv(app) not in site


def _allocate_ports(ctx: Context, m: Manifest) -> tuple[list[int] | None, list[int]]:
    """The ports serving now, and ports to render the files with, the app's domain and env
    recorded in the registry. The rollout picks the new instances' ports; the generated
    files name none that matter (Caddy asks tova-upstreams), so any valid list renders them."""
    with ctx.registry.transaction() as data:
        for name, entry in data["apps"].items():
            if name != m.app and entry.get("domain") == m.domain:
                raise ConfigError(f"domain {m.domain} is already served by app {name!r} on this server",
                                  hint="use another domain, or remove that app first")
        entry = data["apps"].setdefault(m.app, {})
        old_ports = list(entry.get("ports", [])) or None
        entry.update({"domain": m.domain, "env": m.env})
        entry.setdefault("version", None)
        pg = m.database("postgres")
        claim_database(data, m.app, "postgres", pg_database(m.app, pg.name) if pg else None)
        my = m.database("mysql")
        claim_database(data, m.app, "mysql", my.name if my else None)
        entry.setdefault("ports", [])
        preview = old_ports if old_ports and len(old_ports) == m.instances else None
        ports = preview or fresh_ports(data, m.instances, ctx.settings.first_port, ports_in_use(m))
    return old_ports, ports


def _check_secrets(ctx: Context, m: Manifest) -> None:
    ctx.app.data.mkdir(parents=True, exist_ok=True)
    envfile.ensure(ctx.app.env_file)
    missing = envfile.missing(ctx.app.env_file, m.secrets.required)
    if missing:
        raise MissingSecretsError(missing, ctx.env)


def step_provision(ctx: Context, manifest: Manifest, plan: Plan) -> None:
    """Render provision.sh (the record of what the server runs) and run it for the changed
    layers. With no layer changed nothing runs, and the script last run stays the record:
    rendering every server file is most of this step's time in a code-only push (and
    importing the renderer, jinja2, ~20 ms of it)."""
    if not plan.layers and ctx.app.provision_script.is_file():
        perms.harden(ctx.layout, ctx.app)
        return
    from tova.render import render_all

    files = render_all(manifest, plan.ports, ctx.settings)
    write_atomic(ctx.app.provision_script, files["provision.sh"], mode=0o700)
    perms.harden(ctx.layout, ctx.app)
    layers = list(plan.layers)
    key = system_layer.system_key(manifest, ctx.settings)
    if "system" in layers and plan.previous is None and system_layer.provisioned(ctx.layout, key):
        layers.remove("system")  # a new app on a server another app provisioned
        ctx.out.sub("System: provisioned already, with the same packages and settings")
    if not layers:
        return
    ctx.out.begin("Provisioning " + ", ".join(layers) + "...")
    rc = ctx.system.provision(ctx.app.provision_script, layers, OutputLines(ctx.out))
    ctx.out.end(rc == 0)
    if rc == 0 and "system" in layers:
        system_layer.record(ctx.layout, key)
    if rc == 3:
        missing = envfile.missing(ctx.app.env_file, manifest.secrets.required)
        raise MissingSecretsError(missing or ["(see above)"], ctx.env)
    if rc != 0:
        raise DeployError(f"provisioning failed (exit status {rc}); nothing was switched",
                          hint=f"read {ctx.app.provision_script} and the output above")


def step_release(ctx: Context, manifest: Manifest, ws: Workspace, build: Build,
                 plan: Plan, branch: str, version: str) -> Path:
    """The build, the public files and the manifest file become releases/`version`, under
    that name only once complete."""
    dependencies = build.dependencies
    ctx.out.begin(f"Deploying app ({version})...")
    staged = releases.staging_dir(ctx.app, version)
    build.output.rename(staged)
    _copy_data_files(ctx, manifest, ws.source)  # before public/ moves: a data file may live under it
    served = arrange_static(staged, ws.source / "public")
    # Root takes the build user's output: owned by root, explicit modes, no way out.
    release_tree.seal(staged, app_gid(ctx), public=(STATIC,))
    if dependencies is not None:
        _deps_for_app(ctx, dependencies.dir)
        deps.link(staged, dependencies.dir)  # root's own link to the app's shared install
    meta = manifest.to_dict()
    meta.update({
        "version": version,
        "commit": ctx.commit.decode(),
        "branch": branch,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "previous_commit": plan.old_commit,
        "files_changed": plan.files_changed,
        "static_files": len(served),
        "dependencies": dependencies.versions if dependencies else {},
        "dependency_set": dependencies.dir.name if dependencies else None,
        "toolchain": {"compiler": build.toolchain.compiler, "bun": build.toolchain.bun},
        "settings": provisioned(ctx.settings),
    })
    write_atomic(staged / MANIFEST_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n", mode=0o640)
    os.chown(staged / MANIFEST_FILE, 0 if os.geteuid() == 0 else -1, app_gid(ctx))
    release_dir = releases.publish(ctx.app, staged, version)
    ctx.out.end(True)
    return release_dir


def _copy_data_files(ctx: Context, manifest: Manifest, source: Path) -> None:
    root = source.resolve()
    owner = ctx.system.app_owner(ctx.app)
    for rel in manifest.data_files:
        src = (source / rel).resolve()
        if root not in src.parents or not src.is_file():
            raise DeployError(f"data file {rel!r} is not a file inside the project",
                              hint="data sources read files from the project directory")
        # data/ is the app's: never follow what it may have planted there.
        safefs.write_in(ctx.app.data, os.path.normpath(rel), src.read_bytes(), owner)


def step_switch(ctx: Context, version: str) -> None:
    flip_symlink(ctx.app.current, ctx.app.current_target(version))


def step_restart(ctx: Context, manifest: Manifest) -> list[int]:
    """New instances beside the old ones (see rollout.py); the ports now serving."""
    n = manifest.instances
    ctx.out.begin(f"Starting {n} new instance{'s' if n != 1 else ''} beside the old...")
    ports, failure = restart_all(ctx.system, ctx.app, manifest, ctx.settings, ctx.registry)
    ctx.out.end(failure is None)
    if failure is not None:
        report_failure(ctx.out, ctx.app.name, manifest, failure)
        raise _HealthFailed(failure)
    return ports


def step_verify(ctx: Context, manifest: Manifest, ports: list[int], version: str) -> None:
    for port in ports:
        result = check(port, manifest.health)
        if not result.ok:
            ctx.out.step(f"Health check {probe_path(manifest.health)}...", False, "FAILED")
            ctx.out.sub(f"{unit(ctx.app.name, port)}: {result.detail}")
            raise _HealthFailed()
    ctx.out.step("Health check passed", True)
    if manifest.health.fallback:
        text = describe(manifest.health)
        ctx.out.sub(text[0].upper() + text[1:])
        ctx.out.sub(f'Add route GET "{manifest.health.path}" (or set health:) for a strict check')
    with ctx.registry.transaction() as data:
        data["apps"][ctx.app.name]["version"] = version


def step_prune(ctx: Context, manifest: Manifest, version: str) -> None:
    releases.prune(ctx.app, manifest.keep_releases, version)
    in_use = {r.meta().get("dependency_set") for r in releases.listing(ctx.app)}
    deps.prune(ctx.app, {k for k in in_use if k})


# --- after a failed health check -------------------------------------------------------

def _roll_back(ctx: Context, trail: Trail, manifest: Manifest, plan: Plan, release_dir: Path) -> Outcome:
    """The new instances failed and are stopped; the old ones never stopped serving. Point
    `current` back at their release (and start it only if nothing serves it any more)."""
    releases.mark_failed(release_dir, "health check failed")
    target = releases.get(ctx.app, plan.previous) if plan.previous else None
    out = ctx.out
    out.line()
    serving = list((ctx.registry.app(ctx.app.name) or {}).get("ports", []))
    live = [p for p in serving if ctx.system.instance_running(ctx.app, p)]
    if target is None or target.failed:
        out.line("⚠ Health check failed and there is no earlier release to roll back to.")
        ctx.system.stop_instances(ctx.app, serving)
        ctx.app.current.unlink(missing_ok=True)
        out.sub("Instances stopped", True)
        _record(ctx, trail, "failed", "verify", error="health check failed; nothing to roll back to")
        out.line()
        out.line(f"{out.fail_mark} Deploy failed. Nothing to roll back to: {ctx.app.name} is stopped.")
        out.line(f"  Run `tova deploy {ctx.env} --logs` to investigate.")
        return Outcome("failed", trail.version, 1)
    out.line("⚠ Health check failed, rolling back...")
    failure = None
    if live and len(live) == len(serving):
        flip_symlink(ctx.app.current, ctx.app.current_target(target.version))
        out.sub(f"current → {ctx.app.current_target(target.version)} (was {trail.version})", True)
        out.sub(f"{target.version} kept serving throughout: nothing to restart", True)
        # This deploy provisioned Caddy and the units for the failed release: back to the
        # kept one's settings (no restart: its instances already run with them).
        reprovision(ctx.system, ctx.app, releases.read_manifest(target.path) or manifest, ctx.settings,
                    ctx.registry, out, live=manifest)
    else:
        target_manifest = releases.read_manifest(target.path) or manifest
        failure = switch_to(target.version, trail.version, ctx.system, ctx.app, target_manifest,
                            ctx.settings, ctx.registry, out, live=manifest)
        if failure is not None:
            # Never back onto the failed release: the earlier one is the better bet.
            flip_symlink(ctx.app.current, ctx.app.current_target(target.version))
            report_failure(out, ctx.app.name, target_manifest, failure)
    _record(ctx, trail, "rolled_back", "verify", error="health check failed", rolled_back_to=target.version)
    out.line()
    if failure is None:
        out.line(f"{out.fail_mark} Deploy failed. Rolled back to {target.version}.")
    else:
        out.line(f"{out.fail_mark} Deploy failed. Rolled back to {target.version}, which is not healthy either.")
    out.line(f"  Run `tova deploy {ctx.env} --logs` to investigate.")
    return Outcome("rolled_back", target.version, 1)


def _record_failure(ctx: Context, trail: Trail, err: TovaError) -> None:
    """The failed deploy's history record (and its release's failed marker), also when the
    disk is still too full for them: then the error says so."""
    try:
        _record(ctx, trail, "failed", trail.step, error=err.message)
        if trail.release_dir is not None:
            releases.mark_failed(trail.release_dir, f"failed at {trail.step}: {err.message}")
    except OSError as exc:
        if disk_full(exc) is None:
            raise
        err.message += f"; it could not be recorded in {ctx.app.history.name} (no space left)"


def _record(ctx: Context, trail: Trail, outcome: str, step: str | None, **extra: Any) -> None:
    history.append(ctx.app.history, {
        "version": trail.version,
        "commit": ctx.commit.decode(),
        "branch": trail.branch,
        "start": trail.started,
        "end": time.time(),
        "outcome": outcome,
        "step": step,
        "infra_changed": trail.layers,
        **extra,
    })
