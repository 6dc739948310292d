"""The build sandbox's systemd-run line: the app's dependencies are shown read-only."""

from __future__ import annotations

from pathlib import Path

from tova.layout import Layout
from tova.server.sandbox import ToolRun, systemd_run_argv


def test_dependencies_for_the_build_are_bound_read_only_and_nothing_else_is_writable():
    layout = Layout.of(Path("/opt/tova"))
    work = Path("/opt/tova/apps/shop/build/deploy-x")
    mods = Path("/opt/tova/apps/shop/deps/k1.build/node_modules")
    argv = systemd_run_argv(ToolRun(argv=["tova", "build"], cwd=work / "src", workdir=work,
                                    user="tova-build-shop", read_only=(mods,)), layout)
    props = [argv[i + 1] for i, a in enumerate(argv) if a == "-p"]
    assert f"BindReadOnlyPaths={mods}" in props
    assert [p for p in props if p.startswith(("BindPaths=", "ReadWritePaths="))] == [
        f"BindPaths={work}", f"ReadWritePaths={work}"]
    assert props.index(f"TemporaryFileSystem={layout.apps_dir}:ro") < props.index(f"BindReadOnlyPaths={mods}")
    plain = systemd_run_argv(ToolRun(argv=["tova"], cwd=work, workdir=work, user="u"), layout)
    assert not any(a.startswith("BindReadOnlyPaths=") for a in plain)
