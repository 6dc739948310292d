"""`tova-release`: the server-side command (the hook and the client call it over SSH).
Errors are printed once, here, as `err.render()` on stderr with their exit code."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn, cast

# Only what every command needs is imported here: the hooks start this process on each
# push, and the pre-receive check needs neither the pipeline nor the system adapters.
import tova
from tova import remedies
from tova.errors import EXIT_OK, EXIT_USAGE, TovaError, run_at_edge
from tova.layout import AppLayout, Layout, check_app_name
from tova.progress import Out
from tova.settings import ServerSettings, compiler_argv, load_settings

if TYPE_CHECKING:
    import argparse

    from tova.server.ops import ServerOps


EXAMPLES = {
    "version": "tova-release version --json",
    "init": "tova-release init myapp --env prod --branch main",
    "hook": "(run by hooks/post-receive with git's `old new ref` lines on stdin)",
    "pre-receive": "(run by hooks/pre-receive with git's `old new ref` lines on stdin)",
    "deploy": "tova-release deploy myapp --rev 3f2a1c9",
    "rollback": "tova-release rollback myapp --to v3",
    "releases": "tova-release releases myapp --json",
    "status": "tova-release status myapp --json",
    "apps": "tova-release apps --json",
    "logs": 'tova-release logs myapp --since "1 hour ago" --instance 1',
    "env": "echo '{\"JWT_SECRET\": \"s3cret\"}' | tova-release env myapp set",
    "remove": "tova-release remove myapp --yes",
    "toolchain": "tar -czf - -C ~/tova-linux tova | tova-release toolchain --upload tova --expect-version 0.11.26",
}
HELP = {
    "version": "print the toolkit's version",
    "init": "create the app's bare repository and install its pre- and post-receive hooks",
    "hook": "the post-receive hook's entry point",
    "pre-receive": "the pre-receive hook's entry point: rejects a push whose deploy cannot start",
    "deploy": "deploy a commit already in the app's repository (a redeploy)",
    "rollback": "switch back to the previous successful release (or --to vN)",
    "releases": "list the app's releases",
    "status": "instances, databases, certificate and last deploy of an app",
    "apps": "every app on this server, with memory and disk",
    "logs": "the app's logs from journald",
    "env": "list, set or unset the app's secrets (values are never printed)",
    "remove": "stop and remove an app; data and a database dump are archived",
    "toolchain": "install or check Bun and the Tova compiler (an uploaded one: a tar on stdin)",
}


def build_parser() -> argparse.ArgumentParser:
    import argparse  # here, not at the top: the hooks' entry points skip it (see main)

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:  # usage errors go through TovaError too
            raise TovaError(message, hint=f"see: {self.prog} --help", exit_code=EXIT_USAGE)

    p = _Parser(
        prog="tova-release",
        description="tova-deploy's server side (run as root on the server). "
        "APP may be omitted where optional when the server has one app or when run inside an app's directory.",
        epilog="exit codes: 0 ok, 1 failed (e.g. rolled back), 2 usage, 3 missing secrets, 4 locked, 5 not set up",
    )
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(name: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=HELP[name], description=HELP[name],
                              epilog=f"example:\n  {EXAMPLES[name]}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    json_flag: dict[str, Any] = {"action": "store_true", "help": "print JSON instead of text"}
    command("version").add_argument("--json", **json_flag)
    s = command("init")
    s.add_argument("app")
    s.add_argument("--env", required=True)
    s.add_argument("--branch")
    s.add_argument("--json", **json_flag)
    command("hook")
    command("pre-receive")
    s = command("deploy")
    s.add_argument("app")
    s.add_argument("--rev", required=True, metavar="COMMIT")
    s = command("rollback")
    s.add_argument("app", nargs="?")
    s.add_argument("--to", metavar="vN")
    s.add_argument("--json", **json_flag)
    for name in ("releases", "status"):
        s = command(name)
        s.add_argument("app", nargs="?")
        s.add_argument("--json", **json_flag)
    command("apps").add_argument("--json", **json_flag)
    s = command("logs")
    s.add_argument("app")
    s.add_argument("--since", metavar="TIME")
    s.add_argument("--instance", type=int, metavar="N")
    s.add_argument("--build", action="store_true", help="the last build's whole compiler output")
    s.add_argument("--follow", action="store_true")
    s = command("env")
    s.add_argument("app")
    esub = s.add_subparsers(dest="action", required=True, parser_class=_Parser)
    esub.add_parser("list", help="secret names").add_argument("--json", **json_flag)
    e = esub.add_parser("set", help="KEY=VALUE arguments, or a JSON object on stdin")
    e.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    esub.add_parser("unset", help="remove keys").add_argument("keys", nargs="+", metavar="KEY")
    s = command("toolchain")
    s.add_argument("--expect-version", metavar="X.Y.Z", help="the compiler version builds must use")
    s.add_argument("--upload", metavar="ENTRY", help="install the compiler tar on stdin; ENTRY is its start command")
    s.add_argument("--check", action="store_true", help="only report what is there (and the TLS mode)")
    s.add_argument("--json", **json_flag)
    s = command("remove")
    s.add_argument("app")
    s.add_argument("--yes", action="store_true")
    s.add_argument("--json", **json_flag)
    return p


# The hooks' entry points, run on every push, take no arguments: they skip argparse (its
# import and the parser's construction, ~10 ms of each hook's start on the test server).
HOOK_COMMANDS = ("hook", "pre-receive")


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if len(given) == 1 and given[0] in HOOK_COMMANDS:
        hook_args = cast("argparse.Namespace", SimpleNamespace(cmd=given[0]))
        return run_at_edge(lambda: run(hook_args))
    return run_at_edge(lambda: run(build_parser().parse_args(argv)), remedy=remedies.from_environ(os.environ))


def _emit(data: dict[str, Any]) -> None:
    print(json.dumps(data, sort_keys=True))


@dataclass
class Session:
    """What every subcommand handler works with."""

    settings: ServerSettings
    layout: Layout
    out: Out

    @cached_property
    def ops(self) -> ServerOps:
        from tova.server.adapters import select_system
        from tova.server.ops import ServerOps

        return ServerOps(self.settings, self.layout, select_system(self.layout))


def run(args: argparse.Namespace) -> int:
    if args.cmd == "version":  # needs no settings: it must answer even on a broken server
        return cmd_version(args)
    settings = load_settings()
    # A structured answer must own stdout: progress goes to stderr then.
    out = Out(sys.stderr if getattr(args, "json", False) else sys.stdout)
    session = Session(settings, Layout.of(settings.root), out)
    out.journal = lambda line: session.ops.system.journal(line)
    if args.cmd not in REPAIR_UNDER_LOCK:
        from tova.server.repair import repair_all

        repair_all(settings, session.layout, session.ops.system, out)  # what a killed deploy left, first
    return HANDLERS[args.cmd](args, session)


# The deploy pipeline repairs under the deploy lock it holds; the pre-receive check only
# reads, and the post-receive hook's deploy follows it.
REPAIR_UNDER_LOCK = frozenset({"hook", "deploy", "pre-receive"})


def cmd_version(args: argparse.Namespace) -> int:
    if args.json:
        from tova.fingerprint import package_fingerprint

        _emit({"version": tova.__version__, "fingerprint": package_fingerprint()})
    else:
        print(f"tova-release {tova.__version__}")
    return EXIT_OK


def _outlive_the_connection() -> None:
    """A deploy or rollback finishes whatever happens to the caller's ssh connection: a
    hang-up signal is ignored, a dead output pipe only silences the output (ui.Out), which
    still reaches the journal."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def cmd_hook(args: argparse.Namespace, s: Session) -> int:
    from tova.hook import run_hook

    git_dir = Path(os.environ.get("GIT_DIR", "."))
    _outlive_the_connection()
    lines = sys.stdin.readlines()
    return run_hook(lines, git_dir.resolve(), s.settings, s.ops.system, s.out)


def cmd_pre_receive(args: argparse.Namespace, s: Session) -> int:
    from tova.hook import config_identity
    from tova.server.precheck import run_precheck

    git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
    if not (git_dir / "HEAD").is_file():
        raise TovaError("pre-receive runs inside an app's bare repository",
                        hint="git runs it as hooks/pre-receive during a push")
    app_name, env = config_identity(git_dir)
    status = run_precheck(sys.stdin, git_dir, s.settings, s.layout.app(app_name), env, sys.stderr)
    # Git waits for this process before it moves the branch and starts the deploy: skip
    # the interpreter's teardown (~10 ms of every push). Everything it wrote is closed
    # (the check's temporary directory is gone); only the standard streams need a flush.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def cmd_deploy(args: argparse.Namespace, s: Session) -> int:
    from dulwich.repo import Repo

    from tova.hook import repo_identity
    from tova.server.checkout import resolve_commit
    from tova.server.pipeline import deploy

    _outlive_the_connection()
    app = s.ops.resolve_app(args.app)
    repo = Repo(str(app.repo))
    _, env = repo_identity(repo)
    commit = resolve_commit(repo, args.rev)
    return deploy(s.settings, s.layout, app, env, repo, s.ops.system, s.out, commit.id, None).exit_code


def cmd_rollback(args: argparse.Namespace, s: Session) -> int:
    _outlive_the_connection()
    version = s.ops.rollback(s.ops.resolve_app(args.app), args.to, s.out)
    if args.json:
        _emit({"version": version})
    return EXIT_OK


def cmd_releases(args: argparse.Namespace, s: Session) -> int:
    rows = s.ops.releases(s.ops.resolve_app(args.app))
    if args.json:
        _emit({"releases": rows})
        return EXIT_OK
    for r in rows:
        print(f"{r['version']:>6}  {(r['commit'] or '')[:12]:12}  {r['status']:8}  {r['time'] or ''}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace, s: Session) -> int:
    st = s.ops.status(s.ops.resolve_app(args.app))
    if args.json:
        _emit(st)
        return EXIT_OK
    print(f"{st['app']} ({st['env']}) {st['domain'] or ''}  {st['version'] or 'not deployed'}")
    for i in st["instances"]:
        print(f"  @{i['port']}  {i['state']}")
    for problem in st["problems"]:
        print(f"  ! {problem}")
    if st["repaired"]:
        r = st["repaired"]
        print(f"  ! repaired{'' if r['outcome'] == 'repaired' else ' (not fully)'}: found "
              + "; ".join(r["found"]) + "; " + "; ".join(r["done"]))
    return EXIT_OK


def cmd_apps(args: argparse.Namespace, s: Session) -> int:
    data = s.ops.apps()
    if args.json:
        _emit(data)
        return EXIT_OK
    for a in data["apps"]:
        print(f"{a['app']:16} {a['domain'] or '':28} {a['version'] or '-':6} "
              f"{a['instances']} instance{'s' if a['instances'] != 1 else ''}  {a['state']}")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace, s: Session) -> int:
    app = s.ops.resolve_app(args.app)
    if args.build:
        return _print_build_log(app.build_log)
    ports = s.ops.ports(app)
    if args.instance is not None:
        ports = [ports[args.instance - 1]] if 1 <= args.instance <= len(ports) else \
            [p for p in ports if p == args.instance]
        if not ports:
            raise TovaError(f"no instance {args.instance}", hint="instances are numbered from 1")
    return s.ops.system.logs(app.name, ports, args.since, args.follow)


def cmd_env(args: argparse.Namespace, s: Session) -> int:
    from tova.server import envfile

    app = s.ops.resolve_app(args.app)
    if args.action == "list":
        names = sorted(envfile.read(app.env_file))
        if args.json:
            _emit({"names": names})
        else:
            print("\n".join(names))
    elif args.action == "set":
        s.ops.env_set(app, _values_to_set(args.pairs), s.out)
    else:
        s.ops.env_unset(app, args.keys, s.out)
    return EXIT_OK


def cmd_toolchain(args: argparse.Namespace, s: Session) -> int:
    from tova.server import toolchain

    settings = s.settings
    if args.check:
        found = toolchain.inspect(settings)
        _emit({"bun": found.bun, "compiler": found.compiler, "expected": settings.compiler_version or None,
               "problems": list(found.problems), "tls": settings.tls, "bun_version": settings.bun_version})
        return EXIT_OK
    if args.upload:
        toolchain.install_upload(settings, sys.stdin.buffer.read(), args.upload)
        # A progress line like the toolchain's own below it (no `[tova]` step to hang under)
        s.out.passthrough(f"Uploaded the Tova compiler to {compiler_argv(settings)[0]}")
    if args.expect_version:
        toolchain.record_version(settings, args.expect_version)
        settings = load_settings()
    found = toolchain.ensure(settings, s.out.passthrough)
    if args.upload and not args.expect_version and found.compiler:
        # No local compiler to follow: the uploaded one's version is the expected one.
        toolchain.record_version(settings, found.compiler)
        settings = load_settings()
    if args.json:
        _emit({"bun": found.bun, "compiler": found.compiler, "expected": settings.compiler_version or None})
    else:
        print(f"Bun {found.bun}, Tova compiler {found.compiler}")
    return EXIT_OK


def _print_build_log(path: Path) -> int:
    import shutil

    try:
        with open(path, "rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer)
    except FileNotFoundError:
        raise TovaError("no build output yet: this app has not been built on this server",
                        hint="it is kept from the next deploy on") from None
    sys.stdout.flush()
    return 0


def install_hooks(app: AppLayout) -> bool:
    """pre-receive (rejects a push that cannot deploy) and post-receive (deploys); True
    when one was written."""
    from importlib import resources

    from tova.server.atomic import write_atomic

    written = False
    for name in ("pre-receive", "post-receive"):
        text = resources.files("tova").joinpath(f"data/{name}").read_bytes()
        hook = app.git_hook(name)
        if not hook.exists() or hook.read_bytes() != text:
            write_atomic(hook, text, mode=0o755)
            written = True
    return written


def _values_to_set(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE arguments, or (with none) a JSON object of strings on stdin."""
    values: dict[str, str] = {}
    if pairs:
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise TovaError(f"expected KEY=VALUE, got {key!r}", hint="e.g. JWT_SECRET=...")
            values[key] = value
    else:
        try:
            data = json.loads(sys.stdin.read() or "{}")
        except json.JSONDecodeError as exc:
            raise TovaError(f"stdin is not a JSON object: {exc.msg}", hint='send {"KEY": "value"}') from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise TovaError("stdin must be a JSON object of strings", hint='send {"KEY": "value"}')
        values = data
    if not values:
        raise TovaError("nothing to set", hint="pass KEY=VALUE or a JSON object on stdin")
    return values


def cmd_remove(args: argparse.Namespace, s: Session) -> int:
    if not args.yes:
        raise TovaError(f"removing {args.app} needs confirmation", hint="pass --yes")
    result = s.ops.remove(s.ops.resolve_app(args.app), s.out)
    if args.json:
        _emit(result)
    return EXIT_OK


def cmd_init(args: argparse.Namespace, s: Session) -> int:
    from typing import cast

    from dulwich.repo import Repo

    if TYPE_CHECKING:
        from dulwich.refs import Ref

    layout = s.layout
    app = layout.app(check_app_name(args.app))
    created = not app.repo.exists()
    app.dir.mkdir(parents=True, exist_ok=True)
    repo = Repo.init_bare(str(app.repo), mkdir=True) if created else Repo(str(app.repo))
    cfg = repo.get_config()
    try:
        existing = cfg.get((b"tova",), b"env").decode()
    except KeyError:
        existing = None
    if existing and existing != args.env:
        raise TovaError(f"{args.app} is already set up for environment {existing!r}",
                        hint="one app name per environment: give this environment its own app name")
    cfg.set((b"tova",), b"app", args.app.encode())
    cfg.set((b"tova",), b"env", args.env.encode())
    cfg.set((b"tova",), b"root", str(layout.root).encode())
    cfg.set((b"tova",), b"toolkit", str(layout.toolkit).encode())
    cfg.write_to_path()
    if args.branch:
        head: Ref = cast("Ref", b"HEAD")  # dulwich's typed name for a ref; bytes at run time
        branch: Ref = cast("Ref", b"refs/heads/" + args.branch.encode())
        repo.refs.set_symbolic_ref(head, branch)
    hook_installed = install_hooks(app)
    for d in (app.data, app.releases):
        d.mkdir(parents=True, exist_ok=True)
    result = {"app": args.app, "env": args.env, "repo": str(app.repo), "created": created,
              "hook_installed": hook_installed}
    if args.json:
        _emit(result)
    else:
        if created:
            print(f"→ Creating bare repo at {app.repo}  ✓")
        if hook_installed:
            print("→ Installing pre-receive and post-receive hooks  ✓")
        if not created and not hook_installed:
            print(f"→ {app.repo} and its hook are already in place  ✓")
    return EXIT_OK


# One handler per subcommand (`version` runs before settings are read).
HANDLERS: dict[str, Callable[[argparse.Namespace, Session], int]] = {
    "init": cmd_init,
    "hook": cmd_hook,
    "pre-receive": cmd_pre_receive,
    "deploy": cmd_deploy,
    "rollback": cmd_rollback,
    "releases": cmd_releases,
    "status": cmd_status,
    "apps": cmd_apps,
    "logs": cmd_logs,
    "env": cmd_env,
    "remove": cmd_remove,
    "toolchain": cmd_toolchain,
}


if __name__ == "__main__":
    sys.exit(main())
