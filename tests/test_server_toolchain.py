"""Bun and the Tova compiler before a build: found, version-checked, uploaded."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from tova.errors import TovaError
from tova.render import render_toolchain
from tova.server import toolchain
from tova.settings import ServerSettings, compiler_argv, load_settings

COMPILER = Path(__file__).parent / "fixtures" / "tova-fixture-compiler"
needs_bun = pytest.mark.skipif(shutil.which("bun") is None, reason="the compiler (and its fixture) needs Bun")


def tar_of(path: Path, name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(path, arcname=name)
    return buf.getvalue()


@needs_bun
def test_uploaded_compiler_becomes_the_default_and_its_version_is_checked(tmp_path):
    settings = ServerSettings(root=str(tmp_path), compiler="")
    assert any("does not answer" in p for p in toolchain.inspect(settings).problems)
    toolchain.install_upload(settings, tar_of(COMPILER, "tova"), "tova")
    assert toolchain.inspect(settings).compiler == "0.11.26"
    assert compiler_argv(settings) == [str(tmp_path / "compiler" / "tova")]
    toolchain.record_version(settings, "0.11.26")
    settings = load_settings({"TOVA_ROOT": str(tmp_path), "TOVA_BUN_VERSION": toolchain.inspect(settings).bun or ""})
    assert settings.compiler_version == "0.11.26"
    assert toolchain.inspect(settings).problems == ()
    toolchain.record_version(settings, "0.12.0")
    other = load_settings({"TOVA_ROOT": str(tmp_path), "TOVA_BUN_VERSION": settings.bun_version})
    assert toolchain.inspect(other).problems == ("the server's Tova compiler is 0.11.26, the developer's 0.12.0",)


@needs_bun
def test_a_directory_upload_runs_its_entry(tmp_path):
    src = tmp_path / "compiler-src"
    (src / "bin").mkdir(parents=True)
    shutil.copy(COMPILER, src / "bin" / "tova.js")
    settings = ServerSettings(root=str(tmp_path / "root"))
    toolchain.install_upload(settings, tar_of(src, "."), "bin/tova.js")
    assert toolchain.inspect(settings).compiler == "0.11.26"
    with pytest.raises(TovaError, match="has no bin/missing"):
        toolchain.install_upload(settings, tar_of(src, "."), "bin/missing")
    with pytest.raises(TovaError, match="invalid compiler entry"):
        toolchain.install_upload(settings, tar_of(src, "."), "../etc/passwd")


def test_toolchain_script_installs_the_developers_version():
    script = render_toolchain(ServerSettings(compiler_version="0.11.26"))
    assert "readonly TOVA_VERSION=0.11.26" in script and "readonly COMPILER=/opt/tova/compiler/tova" in script
    assert "system_bun\nsystem_compiler\n" in script


def test_a_good_check_holds_until_a_file_it_ran_or_a_version_it_expects_changes(tmp_path, monkeypatch):
    """Every build asks for the toolchain; Bun and the compiler run for their versions
    only when one of them (or the expected version) changed since a check that passed."""
    log = tmp_path / "ran"

    def tool(name: str, answer: str) -> Path:
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\necho {name} >> {log}\necho '{answer}'\n")
        path.chmod(0o755)
        return path

    bun = tool("bun", "1.1.0")
    compiler = tool("tova", "Tova v0.11.26")
    monkeypatch.setattr(toolchain, "bun_binary", lambda: str(bun))
    settings = ServerSettings(root=str(tmp_path / "root"), compiler=str(compiler), bun_version="1.1.0",
                              compiler_version="0.11.26")

    def runs() -> list[str]:
        ran = log.read_text().split() if log.exists() else []
        log.unlink(missing_ok=True)
        return ran

    assert toolchain.ensure(settings, print).compiler == "0.11.26" and runs() == ["bun", "tova"]
    assert toolchain.ensure(settings, print) == toolchain.Toolchain("1.1.0", "0.11.26", ()) and runs() == []
    tool("tova", "Tova v0.11.26")  # the compiler replaced: checked again
    toolchain.ensure(settings, print)
    assert runs() == ["bun", "tova"]
    other = ServerSettings(root=settings.root, compiler=str(compiler), bun_version="1.1.0", compiler_version="0.12.0")
    # another expected version: the last check does not answer for it (ensure would check)
    assert toolchain._checked(other, toolchain._stamp(other)) is None
    assert toolchain._checked(settings, toolchain._stamp(settings)) is not None


@pytest.mark.parametrize(("name", "value", "layer"), [
    ("tls", "internal", "proxy"),
    ("compiler", "/usr/local/bin/tova", "system"),
    ("compiler_install", "true", "system"),
    ("compiler_version", "0.12.0", "system"),
    ("bun_version", "1.5.0", "system"),
    ("bun_source", "archive", "system"),
    ("bun_archive_url", "https://example.com/bun.zip", "system"),
    ("bun_archive_sha256", "0" * 64, "system"),
])
def test_each_provisioning_setting_is_part_of_change_detection(name, value, layer):
    """A release records the settings it was provisioned with; changing one in config.toml
    makes the next deploy provision its layer again (and nothing else)."""
    from dataclasses import replace

    from tova.settings import provisioned, settings_layers

    recorded = provisioned(ServerSettings())
    assert settings_layers(recorded, ServerSettings()) == set()
    assert settings_layers(recorded, replace(ServerSettings(), **{name: value})) == {layer}
    assert settings_layers(None, replace(ServerSettings(), **{name: value})) == set()  # an old release


def test_compiler_install_runs_with_the_version_arch_and_folder(tmp_path):
    """toolchain.sh's compiler step as it runs on a server (Bun and apt left out): the
    install command gets TOVA_VERSION, TOVA_ARCH and TOVA_COMPILER_DIR and its compiler
    must then answer with that version."""
    import subprocess

    install = ('printf "#!/bin/sh\\necho Tova v%s\\n" "$TOVA_VERSION" > "$TOVA_COMPILER_DIR/tova" && '
               'chmod 0755 "$TOVA_COMPILER_DIR/tova" && echo "$TOVA_ARCH" > "$TOVA_COMPILER_DIR/arch"')
    settings = ServerSettings(root=str(tmp_path), compiler_install=install, compiler_version="0.11.27")
    script = render_toolchain(settings)
    assert script.endswith("\nsystem_bun\nsystem_compiler\n")
    script = "\n".join(line for line in script.splitlines()
                       if not line.startswith("apt_needs ") and line != "system_bun") + "\n"
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"-> Tova compiler 0.11.27 ({tmp_path}/compiler/tova): changed" in res.stdout
    assert (tmp_path / "compiler" / "arch").read_text().strip() in ("x64", "arm64")
    again = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert "0.11.27" in again.stdout and "ok (unchanged)" in again.stdout
    # A version the install cannot provide: the step fails and says why.
    wrong = render_toolchain(ServerSettings(root=str(tmp_path), compiler_install="true", compiler_version="0.12.0"))
    wrong = "\n".join(line for line in wrong.splitlines() if not line.startswith("apt_needs ") and line != "system_bun")
    res = subprocess.run(["bash", "-c", wrong], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "compiler_install installed Tova 0.11.27, not 0.12.0" in res.stderr


@pytest.mark.parametrize(("version", "url"), [
    ("0.11.26", "https://github.com/tova-lang/tova-lang/releases/download/v0.11.26/tova-linux-x64"),
    ("", "https://github.com/tova-lang/tova-lang/releases/latest/download/tova-linux-x64"),
])
def test_the_default_compiler_install_fetches_the_release_asset(tmp_path, version, url):
    """The default compiler_install, run as toolchain.sh runs it, with a curl that only
    records its URL and writes a stand-in binary."""
    import os
    import subprocess

    from tova.settings import DEFAULT_COMPILER_INSTALL

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    curl.write_text('#!/bin/sh\nfor a; do last=$a; done\nwhile [ "$1" != -o ]; do shift; done\n'
                    f'echo "$last" > {tmp_path}/url\nprintf "#!/bin/sh\\n" > "$2"\n')
    curl.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "TOVA_VERSION": version, "TOVA_ARCH": "x64",
           "TOVA_COMPILER_DIR": str(tmp_path)}
    res = subprocess.run(["bash", "-c", DEFAULT_COMPILER_INSTALL], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "url").read_text().strip() == url
    assert os.access(tmp_path / "tova", os.X_OK) and not (tmp_path / "tova.download").exists()
