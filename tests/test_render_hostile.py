"""Hostile strings in every manifest field that reaches a generated file: rendering either
refuses (ConfigError) or the files stay valid and each value comes out byte-exact."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck as HC
from hypothesis import given, settings
from hypothesis import strategies as st
from test_quoting import caddy_unquote

from tova.errors import ConfigError
from tova.manifest import Database, HealthCheck, Manifest, Proxy, Secrets
from tova.render import render_all, write_rendered
from tova.server import envfile
from tova.settings import ServerSettings

ATTACKS = ["'", '"', "\\", "$(id)", "`id`", ";", "&&", "|", "\n", "\r", "{", "}", "{$HOME}", "%i", "%%",
           "${PATH}", "#", "*", " ", "\t", "EOF", "TOVA_EOF", "ü", "✓", "\x1b", "--", "/", "..", "\x00"]

# Strings built from attack fragments and arbitrary text.
hostile = st.lists(
    st.one_of(st.sampled_from(ATTACKS), st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)),
    min_size=1,
    max_size=6,
).map("".join)
path_like = hostile.map(lambda s: "/" + s)


def tame(s: str) -> str:
    """Drop what Caddy values refuse (braces, backslash, control characters, edge *), so
    that many examples render and the byte-exact checks below really run."""
    s = "".join(c for c in s if c not in "{}\\" and ord(c) >= 32 and ord(c) != 127).strip("*")
    return s or "x"


caddy_safe = hostile.map(tame)
caddy_path = caddy_safe.map(lambda s: "/" + s)


@st.composite
def manifests(draw) -> Manifest:
    # Half the examples keep the Caddy-bound fields renderable; all keep hostile env values
    # and database names.
    paths, values = (caddy_path, caddy_safe) if draw(st.booleans()) else (path_like, hostile)
    env_vars = tuple((f"V{i}", draw(hostile)) for i in range(draw(st.integers(1, 3))))
    return Manifest(
        env="prod",
        app="app-1",
        project="p",
        server="root@h",
        domain="app.example.com",
        instances=2,
        health=HealthCheck(path=draw(st.one_of(st.just("/healthz"), paths)), interval=30, timeout=5),
        env_vars=env_vars,
        databases=(
            Database("postgres", name=draw(hostile), port=5432),
            Database("redis"),
            Database("sqlite", paths=("data.db",)),
        ),
        proxy=Proxy(
            websocket=True,
            sse=True,
            sse_paths=tuple(draw(st.lists(paths, min_size=1, max_size=2))),
            static=True,
            cors_origins=tuple(draw(st.lists(values, min_size=1, max_size=2))),
        ),
        secrets=Secrets(required=("JWT_SECRET",), auto=("DATABASE_URL",)),
    )


def render_or_refuse(manifest: Manifest) -> dict[str, str] | None:
    try:
        return render_all(manifest, [3000, 3001], ServerSettings())
    except ConfigError:
        return None


def check_files(manifest: Manifest, files: dict[str, str], tmp: Path) -> None:
    write_rendered(files, tmp)
    # No value breaks out of a comment: the whole header of provision.sh is comments.
    head = files["provision.sh"].split("\nset -Eeuo pipefail\n")[0].split("\n")
    assert all(line.startswith("#") for line in head)
    for script in ("provision.sh",):
        res = subprocess.run(["bash", "-n", str(tmp / script)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr

    # The deploy env file reads back (systemd's EnvironmentFile= rules) as the values given;
    # none of them is in the world-readable unit.
    assert envfile.parse(files["env/deploy.env"]) == dict(manifest.env_vars)
    unit = files["systemd/tova-app-1@.service"].split("\n")
    assert not [line for line in unit if line.startswith('Environment="')]

    # Shell: bash itself reads the quoted words back; embedded files come out verbatim.
    prog = (
        f"source <(sed '$d' {tmp / 'provision.sh'})\n"
        'printf \'%s\\0\' "$PG_DB" "$PG_DB_URL_PATH" "$(write_app_unit; echo .)" "$(write_caddy_app; echo .)"\n'
    )
    out = subprocess.run(["bash", "-c", prog], capture_output=True, check=True).stdout.decode().split("\0")
    pg = manifest.database("postgres")
    assert out[0] == (pg.name or "app_1_db")  # an empty name means the default
    assert out[2] == files["systemd/tova-app-1@.service"] + "."
    assert out[3] == files["caddy/apps/app-1.caddy"] + "."
    # The health path reaches the watcher only as JSON (no shell, no unit file).
    assert json.loads(files[".tova-manifest.json"])["health"]["path"] == manifest.health.path

    # Caddyfile: the quoted tokens read back with Caddy's lexer rules.
    site = files["caddy/apps/app-1.caddy"]
    sse = next(ln for ln in site.split("\n") if ln.strip().startswith("@sse path "))
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"', sse)
    assert [caddy_unquote(t) for t in tokens] == list(manifest.proxy.sse_paths)
    origins = [caddy_unquote(ln.strip()[len("header Origin "):]) for ln in site.split("\n")
               if ln.strip().startswith("header Origin ")]
    assert origins == list(manifest.proxy.cors_origins) * 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HC.function_scoped_fixture, HC.too_slow])
@given(manifests())
def test_hostile_values_are_refused_or_come_out_exact(tmp_path_factory, manifest):
    files = render_or_refuse(manifest)
    if files is None:
        return
    check_files(manifest, files, tmp_path_factory.mktemp("r"))


def test_some_hostile_values_are_accepted(tmp_path):
    """The property above is not vacuous: plain-but-nasty values do render."""
    m = Manifest(
        env="prod", app="app-1", project="p", server="root@h", domain="app.example.com", instances=2,
        health=HealthCheck(path="/h'ealth;$(id)"),
        env_vars=(("V0", "it's \"$(rm -rf /)\" `x` 100% ; {} \\ \t ü"),),
        databases=(Database("postgres", name="db'; DROP DATABASE x; --"), Database("redis"),
                   Database("sqlite", paths=("data.db",))),
        proxy=Proxy(websocket=True, sse=True, sse_paths=('/ev "x";$(id)',), static=True,
                    cors_origins=('https://a"b.com', "it's`x`")),
        secrets=Secrets(required=("JWT_SECRET",), auto=("DATABASE_URL",)),
    )
    files = render_or_refuse(m)
    assert files is not None
    check_files(m, files, tmp_path)
    assert "DROP%20DATABASE" in files["provision.sh"]  # the URL path is percent-encoded


@pytest.mark.parametrize(
    "change",
    [
        {"env": "prod\nrm -rf /"},
        {"domain": "a.com\nimport /etc/passwd"},
        {"databases": (Database("postgres", name="db\n$(id)"),)},
        {"env_vars": (("V", "line\nbreak"),)},
        {"proxy": Proxy(sse=True, sse_paths=("/{env.HOME}",))},
        {"proxy": Proxy(cors_origins=("https://a.com\\",))},
        {"health": HealthCheck(path="/h\nx")},
    ],
)
def test_line_breaks_and_placeholders_are_refused(change):
    from dataclasses import replace

    base = Manifest(env="prod", app="app-1", project="p", server="root@h", domain="app.example.com")
    with pytest.raises(ConfigError):
        render_all(replace(base, **change), [3000], ServerSettings())


@pytest.mark.tools
@settings(max_examples=15, deadline=None, suppress_health_check=[HC.function_scoped_fixture, HC.too_slow])
@given(manifests())
def test_caddy_adapts_hostile_sites_exactly(tmp_path_factory, manifest):
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed")
    files = render_or_refuse(manifest)
    if files is None:
        return
    tmp = tmp_path_factory.mktemp("c")
    site = tmp / "site.caddy"
    site.write_text(files["caddy/apps/app-1.caddy"])
    config = tmp / "Caddyfile"
    config.write_text(f"{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n}}\nimport {site}\n")
    res = subprocess.run([caddy, "adapt", "--adapter", "caddyfile", "--config", str(config)],
                         capture_output=True, text=True, env={"HOME": str(tmp), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    text = res.stdout
    data = json.loads(text)
    blob = json.dumps(data)
    assert json.dumps(list(manifest.proxy.sse_paths)) in blob
    assert json.dumps(list(manifest.proxy.cors_origins)) in blob
    assert json.dumps(f"{manifest.app}.tova.internal") in blob  # the health path no longer reaches Caddy
