"""Issue 11 points 1 and 6: what `--plan` says about the server it asked: the compiler
version there (and a warning when it is not the developer's), the TLS mode in force, and
the layers a config.toml change provisions again. The server's answers are the JSON of
`tova-release`; the client turns them into the plan (pure, once the answers are in)."""

from __future__ import annotations

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
    from dataclasses import replace

    preview.run_plan(Path("."), replace(MANIFEST, system=("bun", "caddy")), as_json=False, registry=None,
                     local_only=False)
    assert "System:    Bun 1.5.0, Caddy 2" in capsys.readouterr().out
