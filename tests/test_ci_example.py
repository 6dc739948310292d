"""Issue 14 point 3: examples/ci/deploy.yml deploys without a terminal, secrets from the CI's
environment. Its tova commands must be ones the CLI takes, and its secret variables the
ones `tova deploy` reads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tova import cli
from tova.client.commands import SECRET_PREFIX

WORKFLOW = Path(__file__).resolve().parents[1] / "examples" / "ci" / "deploy.yml"


def _tova_commands() -> list[list[str]]:
    lines = [line.split("#")[0].strip() for line in WORKFLOW.read_text().splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("tova ")]


def test_the_workflow_runs_valid_tova_commands_ending_with_a_plain_deploy():
    commands = _tova_commands()
    assert commands, "the workflow runs no tova command"
    for argv in commands:
        args = cli.build_parser().parse_args(cli.join_option_values(argv))
        assert args.command == "deploy" and args.env == "prod"
        cli.check_modifiers(args, cli.deploy_action(args))
    last = cli.build_parser().parse_args(commands[-1])
    assert cli.deploy_action(last) == "deploy"  # pushes and waits: its exit status fails the job


def test_secrets_come_from_the_variables_tova_deploy_reads():
    names = re.findall(r"^\s*(TOVA_SECRET_\w+):\s*\$\{\{ secrets\.\w+ \}\}", WORKFLOW.read_text(), re.M)
    assert names and all(n.startswith(SECRET_PREFIX) for n in names)
