"""The wheel the client uploads to servers carries every non-Python file the toolkit reads."""

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tova.client.wheels import own_wheel

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.e2e  # builds a wheel with pip: seconds
def test_wheel_has_templates_and_server_scripts(tmp_path):
    names = set(zipfile.ZipFile(own_wheel(tmp_path)).namelist())  # the wheel setup-git uploads
    expected = {"tova/templates/provision.sh.j2", "tova/templates/screens/plan.txt.j2",
                "tova/data/post-receive",
                "tova/data/pre-receive", "tova/data/probe.sh", "tova/data/link-toolkit.sh", "tova/data/make-venv.sh"}
    assert expected <= names
    for t in (REPO / "tova" / "templates").rglob("*.j2"):
        assert f"tova/{t.relative_to(REPO / 'tova')}" in names


def test_packaged_scripts_are_the_repository_ones():
    data = REPO / "tova" / "data"
    for hook in ("pre-receive", "post-receive"):
        assert (data / hook).read_bytes() == (REPO / "hooks" / hook).read_bytes()
    for script in (REPO / "server_scripts").glob("*.sh"):
        assert (data / script.name).read_bytes() == script.read_bytes()


@pytest.mark.tools
def test_server_scripts_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (./run-tests installs it)")
    scripts = [*sorted((REPO / "server_scripts").glob("*.sh")), REPO / "hooks" / "post-receive",
               REPO / "hooks" / "pre-receive"]
    res = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


@pytest.mark.e2e  # builds a wheel with pip: seconds
def test_a_client_installed_without_its_source_rebuilds_its_own_wheel(tmp_path, monkeypatch):
    """pip install of a wheel leaves no checkout behind: setup-git must still be able to
    send the server this very toolkit, rebuilt from the installed package."""
    import tova
    from tova.client import wheels
    from tova.fingerprint import package_files, package_fingerprint

    monkeypatch.setattr(wheels, "source_tree", lambda: None)
    (tmp_path / "a").mkdir()
    first = own_wheel(tmp_path / "a")  # no source tree: rebuilt from the package itself
    names = set(zipfile.ZipFile(first).namelist())
    assert {"tova/cli.py", "tova/templates/provision.sh.j2", "tova/data/pyproject.toml"} <= names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(first).read(meta).decode()
    assert f"Version: {tova.__version__}" in text and "Requires-Dist: dulwich" in text
    # Installed from that wheel, it would rebuild the same package again.
    extracted = tmp_path / "site"
    zipfile.ZipFile(first).extractall(extracted)
    files = sorted(p.relative_to(extracted / "tova").as_posix() for p in (extracted / "tova").rglob("*") if p.is_file())
    assert files == package_files(REPO / "tova")
    assert package_fingerprint()  # the fingerprint covers exactly these files
