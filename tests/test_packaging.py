"""The wheel the client uploads to servers carries every non-Python file the toolkit reads."""

import zipfile
from pathlib import Path

from tova.client.wheels import own_wheel

REPO = Path(__file__).resolve().parent.parent


def test_wheel_has_templates_grammar_and_server_scripts(tmp_path):
    names = set(zipfile.ZipFile(own_wheel(tmp_path)).namelist())  # the wheel setup-git uploads
    expected = {"tova/lang/tova.lark", "tova/templates/provision.sh.j2", "tova/templates/screens/plan.txt.j2",
                "tova/data/post-receive", "tova/data/probe.sh", "tova/data/link-toolkit.sh", "tova/data/make-venv.sh"}
    assert expected <= names
    for t in (REPO / "tova" / "templates").rglob("*.j2"):
        assert f"tova/{t.relative_to(REPO / 'tova')}" in names


def test_packaged_scripts_are_the_repository_ones():
    data = REPO / "tova" / "data"
    assert (data / "post-receive").read_bytes() == (REPO / "hooks" / "post-receive").read_bytes()
    for script in (REPO / "server_scripts").glob("*.sh"):
        assert (data / script.name).read_bytes() == script.read_bytes()


def test_server_scripts_pass_shellcheck():
    import shutil
    import subprocess

    import pytest

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (./run-tests installs it)")
    scripts = [*sorted((REPO / "server_scripts").glob("*.sh")), REPO / "hooks" / "post-receive"]
    res = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
