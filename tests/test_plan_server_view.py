"""Issue 11 points 1 and 6: what `--plan` says about the server it asked: the compiler
version there (and a warning when it is not the developer's), the TLS mode in force, and
the layers a config.toml change provisions again. The server's answers are the JSON of
`tova-release`; the client turns them into the plan (pure, once the answers are in)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tova.client import bootstrap, commands, localgit
from tova.client.remote import Probe
from tova.manifest import Manifest
from tova.plan import render_plan

MANIFEST = Manifest(env="prod", app="shop", project="shop", server="root@example.com", domain="shop.example.com")


class FakeServer:
    """Answers `tova-release` as a server with the toolkit and `shop` deployed would."""

    def __init__(self, check: dict[str, Any], status: dict[str, Any]) -> None:
        self.answers = {"toolchain": check, "status": status,
                        "apps": {"apps": [{"app": "shop", "instances": 1, "memory_limit_bytes": 0}]}}

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def probe(self, app: str | None = None) -> Probe:
        return Probe(uid=0, user="root", toolkit=True, repo=True, mem_total=4 << 30,
                     installed=frozenset({"caddy", "bun"}))

    def release_json(self, args: list[str], stdin: bytes | None = None) -> dict[str, Any]:
        return self.answers[args[0]]


def plan(monkeypatch: pytest.MonkeyPatch, local: str | None, check: dict[str, Any],
         settings: dict[str, str] | None = None, settings_changed: tuple[str, ...] = ()) -> dict[str, Any]:
    status = {"version": "v3", "commit": None, "ports": [3000], "manifest": MANIFEST.to_dict(),
              "settings": settings or {}, "settings_changed": list(settings_changed)}
    monkeypatch.setattr(commands, "_server", lambda m: FakeServer(check, status))
    monkeypatch.setattr(bootstrap, "local_compiler_version", lambda: local)
    monkeypatch.setattr(localgit, "rev", lambda *a: None)
    return commands.cmd_plan_remote(Path("."), MANIFEST)


CHECK = {"bun": "1.4.5", "compiler": "0.11.26", "expected": "0.11.26", "problems": [], "tls": "auto"}


def test_the_plan_warns_when_the_servers_compiler_is_not_the_developers(monkeypatch):
    text = commands.format_plan_remote(plan(monkeypatch, "0.12.0", CHECK, {"tls": "auto"})).splitlines()
    assert "Server: Tova compiler 0.11.26, Bun 1.4.5, TLS automatic HTTPS" in text
    assert ("⚠ the server's Tova compiler is 0.11.26, yours 0.12.0: `tova deploy prod --setup-git` "
            "makes the server's builds use yours") in text
    same = commands.format_plan_remote(plan(monkeypatch, "0.11.26", CHECK, {"tls": "auto"}))
    assert "⚠" not in same and "No changes from last deploy" in same


def test_the_plan_shows_the_tls_mode_in_force_and_what_a_changed_config_reprovisions(monkeypatch):
    # config.toml says internal now; the live release was provisioned with auto.
    view = plan(monkeypatch, None, {**CHECK, "tls": "internal"}, {"tls": "auto"}, ("proxy",))
    assert view["changed_layers"] == ["proxy"]
    text = commands.format_plan_remote(view).splitlines()
    assert "Changed: app bundle, Caddy config" in text
    assert ("Server: Tova compiler 0.11.26, Bun 1.4.5, TLS automatic HTTPS (config.toml now says "
            "Caddy's local CA: the next deploy applies it)") in text
    screen = render_plan(MANIFEST, [3000], "1.4.5", [], tls=view["toolchain"]["tls_in_force"])
    assert "Domain:    shop.example.com (auto-SSL)" in screen
    # Once deployed with it, internal is what is in force, and the Domain line says so.
    view = plan(monkeypatch, None, {**CHECK, "tls": "internal"}, {"tls": "internal"})
    assert view["changed_layers"] == []
    assert "TLS Caddy's local CA" in commands.format_plan_remote(view).splitlines()[-1]
    screen = render_plan(MANIFEST, [3000], "1.4.5", [], tls=view["toolchain"]["tls_in_force"])
    assert 'Domain:    shop.example.com (TLS from Caddy\'s local CA: tls = "internal")' in screen


def test_the_plan_names_the_bun_the_servers_settings_install(monkeypatch, capsys):
    from tova.client import preview

    view = plan(monkeypatch, None, {**CHECK, "bun_version": "1.5.0"}, {"tls": "auto"})
    assert view["toolchain"]["bun_version"] == "1.5.0"
    monkeypatch.setattr(preview, "_server_view", lambda project, m: view)

    preview.run_plan(Path("."), replace(MANIFEST, system=("bun", "caddy")), as_json=False, registry=None,
                     local_only=False)
    assert "System:    Bun 1.5.0, Caddy 2" in capsys.readouterr().out


# ---- a server without the toolkit (before --setup-git): its config.toml, read by the probe

def probe_of(root: Path) -> Probe:
    """probe.sh as the client runs it (`sh -c SCRIPT sh ROOT APP`), here on this machine."""
    import subprocess

    from tova.client.scripts import server_script

    res = subprocess.run(["sh", "-c", server_script("probe.sh"), "sh", str(root), "shop"],
                         capture_output=True, text=True, check=True)
    return Probe.parse(res.stdout)


class FreshServer(FakeServer):
    """A server without the toolkit: only the probe answers."""

    def __init__(self, root: Path) -> None:
        super().__init__({}, {})
        self.root = root
        self.renv = type("RemoteEnv", (), {"root": "/opt/tova"})()

    def probe(self, app: str | None = None) -> Probe:
        return probe_of(self.root)

    def release_json(self, args: list[str], stdin: bytes | None = None) -> dict[str, Any]:
        raise AssertionError(f"tova-release {args} asked of a server without the toolkit")


def fresh_plan(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root: Path,
               local_only: bool = False) -> str:
    from tova.client import preview

    monkeypatch.setattr(commands, "_server", lambda m: FreshServer(root))
    monkeypatch.setattr(bootstrap, "local_compiler_version", lambda: None)
    monkeypatch.setattr(preview, "shadowing_tova", lambda: None)
    manifest = replace(MANIFEST, system=("bun", "caddy"))
    preview.run_plan(Path("."), manifest, as_json=False, registry=None, local_only=local_only)
    return capsys.readouterr().out


def test_the_probe_brings_the_settings_file_verbatim_after_the_facts(tmp_path):
    assert probe_of(tmp_path).config_toml is None  # no settings file
    text = '# test server\ntls = "internal"\nfirst_port = 4000\n\n[unknown_table]\nrepo=1\n'
    (tmp_path / "config.toml").write_text(text)
    probe = probe_of(tmp_path)
    assert probe.config_toml == text.rstrip("\n") + "\n"
    assert probe.uid >= 0 and not probe.repo  # the file's `key=value` lines are not facts
    (tmp_path / "config.toml").write_text("")
    assert probe_of(tmp_path).config_toml == "\n"


def test_a_fresh_servers_plan_shows_the_tls_its_settings_file_sets(monkeypatch, capsys, tmp_path):
    (tmp_path / "config.toml").write_text('tls = "internal"\nbun_version = "1.5.0"\n')
    out = fresh_plan(monkeypatch, capsys, tmp_path)
    assert 'Domain:    shop.example.com (TLS from Caddy\'s local CA: tls = "internal")' in out, out
    assert "System:    Bun 1.5.0" in out and "Not deployed yet: every layer runs" in out, out
    assert "Server: Tova compiler" not in out  # no toolkit, no toolchain to report yet
    # The same parser as the server's: what it rejects, the plan reports.
    (tmp_path / "config.toml").write_text('tls = "internal"\nbun_versoin = "1.5.0"\n')
    assert "/opt/tova/config.toml: unknown setting 'bun_versoin'" in fresh_plan(monkeypatch, capsys, tmp_path)


def test_a_plan_says_the_default_tls_applies_when_no_settings_were_read(monkeypatch, capsys, tmp_path):
    out = fresh_plan(monkeypatch, capsys, tmp_path)
    assert 'Domain:    shop.example.com (auto-SSL: tls = "auto", the default, as the server has no config.toml)' in out
    (tmp_path / "config.toml").write_text('tls = "internal"\n')
    out = fresh_plan(monkeypatch, capsys, tmp_path, local_only=True)  # not asked
    assert ('Domain:    shop.example.com (auto-SSL: tls = "auto", the default, unless the server\'s '
            "config.toml sets another)") in out, out


def test_the_plans_parser_is_the_servers(tmp_path):
    """parse_settings (the plan, from the probe's text) and load_settings (the server, from
    its file) read a config.toml the same way; bad files fail the same way."""
    from tova.errors import TovaError
    from tova.settings import load_settings, parse_settings

    text = 'tls = "internal"\nfirst_port = 4000\nbun_version = "1.5.0"\n'
    (tmp_path / "config.toml").write_text(text)
    assert parse_settings(text, str(tmp_path)) == load_settings({"TOVA_ROOT": str(tmp_path)})
    assert parse_settings(text).tls == "internal"
    for bad, message in (('tls = "internal', "config.toml: "), ("first_port = \"x\"\n", "is not a int")):
        (tmp_path / "config.toml").write_text(bad)
        with pytest.raises(TovaError, match=message):
            parse_settings(bad, str(tmp_path))
        with pytest.raises(TovaError, match=message):
            load_settings({"TOVA_ROOT": str(tmp_path)})
    (tmp_path / "config.toml").write_bytes(b'tls = "\xff"\n')
    with pytest.raises(TovaError, match="config.toml"):
        load_settings({"TOVA_ROOT": str(tmp_path)})
