"""The front door for every caller (CLI, plan, render, hook): project dir + env → Manifest."""

from __future__ import annotations

from pathlib import Path

from tova.config import DeployConfig, build_config
from tova.lang.program import Program
from tova.manifest import Manifest


def read_program(project_dir: str | Path) -> Program:
    from tova.lang.reader import read_project  # lark is imported only when needed

    return read_project(Path(project_dir))


def load_config(program: Program, env: str) -> DeployConfig:
    return build_config(program.deploys, env, program.project_name)


def load_manifest(project_dir: str | Path, env: str) -> Manifest:
    from tova.infer import build_manifest

    program = read_program(project_dir)
    return build_manifest(program, load_config(program, env), project_dir)
