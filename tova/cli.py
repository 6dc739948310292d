"""`tova`: the deploy toolkit's command line (`tova deploy`, `tova env`).

Any other subcommand belongs to the Tova compiler, whose CLI is also called `tova`:
we hand it over when one is configured (TOVA_COMPILER) or found on PATH."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tova import remedies
from tova.client.on_path import find_compiler
from tova.errors import EXIT_USAGE, TovaError, run_at_edge

OUR_COMMANDS = ("deploy", "env")
# Options of ours that take a value. A value may start with "-" (`--since -2min`,
# `--since --x`): argparse would take it for an option, so `--opt VALUE` is joined into
# `--opt=VALUE` before parsing, and values are forwarded in that form too.
VALUE_OPTIONS = frozenset({"--project", "--render", "--registry", "--to", "--since", "--instance", "--server"})

DEPLOY_EPILOG = """examples:
  tova deploy prod --plan              show what a deploy would do (nothing is changed)
  tova deploy prod --plan --json       the same as one JSON object
  tova deploy prod --render out/       write provision.sh, Caddy and systemd files to out/
  tova deploy prod --setup-git         prepare the server and add the git remote "prod"
  tova deploy prod                     deploy (push the branch, stream the server's progress)
  tova deploy prod --status            instances, databases, certificate, last deploy
  tova deploy prod --logs --since "1 hour ago"
  tova deploy prod --rollback --to v3
  tova deploy --list --server root@203.0.113.7
"""

ENV_EPILOG = """examples:
  tova env prod list                   secret names (never values)
  tova env prod set JWT_SECRET          asks for the value (hidden): not in shell history or ps
  tova env prod set JWT_SECRET - < f    the value from stdin (one trailing newline dropped)
  tova env prod set 'GREETING=hello world' DEBUG=1
  tova env prod unset OLD_KEY
"""


def build_parser(prog: str = "tova") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="tova-deploy: deploy Tova apps to your own Linux servers. "
        "Other subcommands go to the Tova compiler.",
    )
    from tova import __version__

    parser.add_argument("--version", action="version", version=f"tova-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{deploy,env}")

    d = sub.add_parser(
        "deploy",
        help="plan, deploy and manage an environment of this project",
        epilog=DEPLOY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("env", nargs="?", help='the deploy block\'s name, e.g. "prod"')
    d.add_argument("--project", default=".", metavar="DIR", help="project directory (default: .)")
    actions = d.add_mutually_exclusive_group()
    actions.add_argument("--plan", action="store_true", help="show the plan, change nothing")
    actions.add_argument("--render", metavar="DIR", help="write every generated file into DIR")
    actions.add_argument("--setup-git", action="store_true", help="set up the server and the git remote")
    actions.add_argument("--rollback", action="store_true", help="roll back to the previous release")
    actions.add_argument("--logs", action="store_true", help="show the app's logs (journalctl)")
    actions.add_argument("--status", action="store_true", help="instances, databases, certificate")
    actions.add_argument("--ssh", action="store_true", help="open a shell on the server")
    actions.add_argument("--remove", action="store_true", help="remove the app (data is archived)")
    actions.add_argument("--list", action="store_true", help="list the apps on --server")
    d.add_argument("--json", action="store_true", help="machine-readable output (plan, status, list)")
    d.add_argument("--registry", metavar="FILE", help="with --render/--plan: take ports from this registry.json")
    d.add_argument("--local", action="store_true", help="with --plan: do not contact the server")
    d.add_argument("--to", metavar="vN", help="with --rollback: the release to go back to")
    d.add_argument("--since", metavar="TIME", help='with --logs: e.g. "1 hour ago"')
    d.add_argument("--instance", type=int, metavar="N", help="with --logs: only instance N (1-based)")
    d.add_argument("--follow", "-f", action="store_true", help="with --logs: keep streaming")
    d.add_argument("--build", action="store_true", help="with --logs: the last build's whole compiler output")
    d.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    d.add_argument("--offline", action="store_true", help="with --setup-git: upload dependencies too")
    d.add_argument("--compiler", metavar="PATH",
                   help="with --setup-git: upload this Linux build of the Tova compiler (a binary, or a "
                        "directory with bin/tova or bin/tova.js) instead of letting the server download it")
    d.add_argument("--server", metavar="TARGET", help="with --list: the SSH target")

    e = sub.add_parser(
        "env",
        help="list, set and unset an environment's secrets on its server",
        epilog=ENV_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("env", help='the deploy block\'s name, e.g. "prod"')
    e.add_argument("action", choices=("list", "set", "unset"))
    e.add_argument("items", nargs="*", metavar="KEY[=VALUE]")
    e.add_argument("--project", default=".", metavar="DIR", help="project directory (default: .)")
    e.add_argument("--json", action="store_true", help="with list: JSON output")
    return parser


def join_option_values(argv: list[str]) -> list[str]:
    """`--since -2min` → `--since=-2min` for our value options, so any value is one
    argument whatever it starts with. Nothing after `--` is touched."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return out + argv[i:]
        if arg in VALUE_OPTIONS and i + 1 < len(argv):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def main(argv: list[str] | None = None, prog: str = "tova") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if prog == "tova" and argv and not argv[0].startswith("-") and argv[0] not in OUR_COMMANDS:
        return hand_over_to_compiler(argv)
    parser = build_parser(prog)
    args = parser.parse_args(join_option_values(argv))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return run_at_edge(lambda: run_deploy(args) if args.command == "deploy" else run_env(args),
                       remedy=remedies.in_tova_deploy_words if prog == "tova-deploy" else None)


# The action flags of `tova deploy` (none: deploy), and the actions each modifier goes with.
ACTIONS = ("plan", "render", "setup_git", "rollback", "logs", "status", "ssh", "remove", "list")
MODIFIERS = {
    "json": ("plan", "status", "list"),
    "registry": ("plan", "render"),
    "local": ("plan",),
    "to": ("rollback",),
    "since": ("logs",),
    "instance": ("logs",),
    "follow": ("logs",),
    "yes": ("deploy", "remove"),
    "offline": ("setup_git",),
    "compiler": ("setup_git",),
    "server": ("list",),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def deploy_action(args: argparse.Namespace) -> str:
    """The one action asked for (argparse keeps them exclusive); "deploy" when none."""
    return next((a for a in ACTIONS if getattr(args, a)), "deploy")


def check_modifiers(args: argparse.Namespace, action: str) -> None:
    """A modifier given with an action it does not change is a mistake, not a no-op:
    `--plan --to v3 --follow` says so instead of showing a plan."""
    for name, goes_with in MODIFIERS.items():
        if getattr(args, name) in (None, False) or action in goes_with:
            continue
        doing = "a deploy" if action == "deploy" else _flag(action)
        allowed = " or ".join("a deploy" if a == "deploy" else _flag(a) for a in goes_with)
        raise TovaError(f"{_flag(name)} does not go with {doing}", hint=f"{_flag(name)} is for {allowed}",
                        exit_code=EXIT_USAGE)


def run_deploy(args: argparse.Namespace) -> int:
    action = deploy_action(args)
    check_modifiers(args, action)
    if action == "list":
        if not args.server:
            raise TovaError("--list needs --server", hint="tova deploy --list --server root@your-server")
        from tova.client.commands import cmd_list

        return cmd_list(args.server, json=args.json)
    if not args.env:
        raise TovaError("which environment?", hint="name a deploy block, e.g. tova deploy prod --plan")
    project = Path(args.project)
    from tova.loader import load_project

    program, config, manifest = load_project(project, args.env)
    if action == "plan":
        from functools import partial

        from tova.client import preview
        from tova.loader import served_view, shown_location
        from tova.plan import health_view

        health = health_view(program, config, manifest.health, partial(shown_location, project))
        return preview.run_plan(project, manifest, as_json=args.json, registry=args.registry,
                                local_only=args.local, health=health, served=served_view(program))
    if action == "render":
        from tova.client import preview

        return preview.run_render(manifest, Path(args.render), registry=args.registry)
    from tova.client import commands as c

    handlers: dict[str, Callable[[], int]] = {
        "setup_git": lambda: c.cmd_setup_git(project, manifest, offline=args.offline,
                                             compiler=Path(args.compiler) if args.compiler else None),
        "rollback": lambda: c.cmd_rollback(project, manifest, to=args.to),
        "logs": lambda: c.cmd_logs(project, manifest, since=args.since, instance=args.instance,
                                   follow=args.follow, build=args.build),
        "status": lambda: c.cmd_status(project, manifest, json=args.json),
        "ssh": lambda: c.cmd_ssh(project, manifest),
        "remove": lambda: c.cmd_remove(project, manifest, yes=args.yes),
        "deploy": lambda: c.cmd_deploy(project, manifest, yes=args.yes),
    }
    return handlers[action]()


def run_env(args: argparse.Namespace) -> int:
    from tova.client.commands import cmd_env
    from tova.loader import load_manifest

    manifest = load_manifest(Path(args.project), args.env)
    items = list(args.items)
    if args.json:
        items.append("--json")
    return cmd_env(Path(args.project), manifest, args.action, items)


def hand_over_to_compiler(argv: list[str]) -> int:
    compiler = find_compiler()
    if compiler is None:
        print(
            f"tova: '{argv[0]}' is a Tova compiler command; this `tova` is the deploy toolkit "
            "(deploy, env). Set TOVA_COMPILER=/path/to/tova or put the compiler's `tova` on PATH.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    import shlex

    cmd = shlex.split(compiler) + argv
    env = dict(os.environ, TOVA_DEPLOY_HANDED_OVER="1")
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as exc:
        print(f"tova: cannot run the compiler {cmd[0]!r}: {exc.strerror}", file=sys.stderr)
        print("hint: check TOVA_COMPILER or the compiler's `tova` on PATH", file=sys.stderr)
        return EXIT_USAGE


def deploy_main(argv: list[str] | None = None) -> int:
    """`tova-deploy`: the same as `tova deploy` (and `tova-deploy env ...` as `tova env
    ...`), for machines where the Tova compiler's own `tova` comes first on PATH."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("env", "deploy"):
        return main(argv, prog="tova-deploy")
    if argv and argv[0] == "--version":
        return main(argv, prog="tova-deploy")
    return main(["deploy", *argv], prog="tova-deploy")


if __name__ == "__main__":
    sys.exit(main())
