"""The real tools as oracles: shellcheck, caddy adapt/validate, systemd-analyze."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tova.manifest import Database, HealthCheck, Manifest, Proxy, Secrets
from tova.naming import UPSTREAMS_REFRESH_MS
from tova.render import render_all, write_rendered
from tova.settings import ServerSettings

pytestmark = pytest.mark.tools


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install shellcheck caddy systemd)")
    return path


def minimal() -> Manifest:
    return Manifest(env="prod", app="blog", project="blog", server="root@h", domain="blog.example.com")


def full() -> Manifest:
    return Manifest(
        env="staging",
        app="shop-2",
        project="shop",
        server="root@h",
        domain="shop.example.com",
        instances=3,
        health=HealthCheck(path="/health/ready", interval=15, timeout=3),
        env_vars=(("NODE_ENV", "production"), ("ODD", "a \"b\" \\c 100% $(id) `x`;{}")),
        databases=(
            Database("postgres", name="shop db \"prod\"", port=5433),
            Database("redis", maxmemory_bytes=64 * 1024 * 1024),
            Database("sqlite", paths=("app.db", "cache/c.db")),
        ),
        proxy=Proxy(
            websocket=True,
            sse=True,
            sse_paths=("/events", "/live \"feed\""),
            static=True,
            cors_origins=("https://a.example.com", 'https://we"ird.example.com:8443'),
        ),
        secrets=Secrets(required=("JWT_SECRET", "API_KEY"), auto=("DATABASE_URL", "REDIS_URL", "SESSION_KEY")),
    )


def cors_any() -> Manifest:
    return replace(minimal(), proxy=Proxy(static=True, cors_origins=("*",)), restart_on_failure=False)


CASES = {
    "minimal": (minimal(), [3000], ServerSettings()),
    "full": (full(), [3001, 3002, 3003], ServerSettings()),
    "archive": (
        full(),
        [4000, 4001, 4002],
        ServerSettings(
            bun_source="archive",
            bun_archive_url="https://example.invalid/bun-linux-x64.zip",
            bun_archive_sha256="0" * 64,
            compiler="tova build",
            compiler_install="echo installing the compiler",
        ),
    ),
    "cors-any": (cors_any(), [3000], ServerSettings()),
    "tls-internal": (full(), [3000, 3001, 3002], ServerSettings(tls="internal")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_shellcheck_is_silent(case, tmp_path):
    shellcheck = need("shellcheck")
    manifest, ports, settings = CASES[case]
    write_rendered(render_all(manifest, ports, settings), tmp_path)
    for script in ("provision.sh",):
        res = subprocess.run([shellcheck, "--shell=bash", str(tmp_path / script)], capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout == "", f"{script}:\n{res.stdout}{res.stderr}"


def caddy_config(tmp_path: Path, files: dict[str, str]) -> Path:
    """A test config that imports the rendered master (as the system Caddyfile does),
    with a global block that needs no network, admin port or trust store."""
    out = tmp_path / "rendered"
    write_rendered(files, out)
    master = (out / "caddy/Caddyfile").read_text()
    # The master names <root>/caddy/apps; point it at the rendered copy.
    (out / "caddy/Caddyfile").write_text(master.replace('"/opt/tova/caddy/apps/', f'"{out}/caddy/apps/'))
    config = tmp_path / "Caddyfile"
    config.write_text("{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n}\n" f"import {out}/caddy/Caddyfile\n")
    return config


def caddy_env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
            "PATH": "/usr/bin:/bin"}


def adapt(tmp_path: Path, files: dict[str, str]) -> dict:
    caddy = need("caddy")
    config = caddy_config(tmp_path, files)
    res = subprocess.run([caddy, "adapt", "--adapter", "caddyfile", "--config", str(config)],
                         capture_output=True, text=True, env=caddy_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "warn" not in res.stderr.lower(), res.stderr
    valid = subprocess.run([caddy, "validate", "--adapter", "caddyfile", "--config", str(config)],
                           capture_output=True, text=True, env=caddy_env(tmp_path))
    assert valid.returncode == 0 and "Valid configuration" in valid.stdout + valid.stderr, valid.stderr
    return json.loads(res.stdout)


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


@pytest.mark.parametrize("case", sorted(CASES))
def test_caddy_accepts_the_site(case, tmp_path):
    manifest, ports, settings = CASES[case]
    config = adapt(tmp_path, render_all(manifest, ports, settings))
    nodes = list(walk(config))
    hosts = [n["host"] for n in nodes if "host" in n]
    assert [manifest.domain] in hosts
    proxies = [n for n in nodes if n.get("handler") == "reverse_proxy"]
    assert proxies
    for p in proxies:
        # The instances come from tova-upstreams (SRV on loopback), never from the file.
        assert "upstreams" not in p and "health_checks" not in p
        assert p["dynamic_upstreams"] == {"source": "srv", "name": f"{manifest.app}.tova.internal",
                                          "refresh": UPSTREAMS_REFRESH_MS * 1_000_000,
                                          "resolver": {"addresses": ["udp/127.0.0.1:54"]}}
        assert p["transport"]["resolver"] == {"addresses": ["udp/127.0.0.1:54"]}
        assert p["load_balancing"]["selection_policy"]["policy"] == "round_robin"
        assert p["load_balancing"]["try_duration"] == 10_000_000_000
        assert p["load_balancing"]["try_interval"] == 100_000_000
    # Hostile values arrive byte-exact in the adapted JSON.
    if manifest.proxy.sse_paths:
        assert {"path": list(manifest.proxy.sse_paths)} in nodes
        assert any(p.get("flush_interval") == -1 for p in proxies)
    origins = [n["header"]["Origin"] for n in nodes if "header" in n and "Origin" in n.get("header", {})]
    for origin_list in origins:
        assert origin_list == list(manifest.proxy.cors_origins)
    if manifest.proxy.static:
        files = [n["file"] for n in nodes if "file" in n and isinstance(n["file"], dict)]
        assert files and files[0]["root"] == f"{settings.root}/apps/{manifest.app}/current/static"
        # A page the app answers 404 gets the build's 200.html (the browser app's routes).
        fallback = [r for p in proxies for r in p.get("handle_response", [])]
        assert [r["match"] for r in fallback] == [{"status_code": [404]}]
        assert {"handler": "rewrite", "uri": "/200.html"} in list(walk(fallback))


def units_dir(tmp_path: Path, manifest: Manifest, ports: list[int]) -> tuple[Path, dict[str, str]]:
    """Rendered units in a temp root. bun is not installed on this machine, so ExecStart is
    pointed at /bin/true for verify (the only change); the toolkit's python is really there."""
    root = tmp_path / "root"
    files = render_all(manifest, ports, ServerSettings(root=str(root)))
    write_rendered(files, tmp_path / "out")
    app_dir = root / "apps" / manifest.app
    app_dir.mkdir(parents=True)
    (root / "toolkit" / "bin").mkdir(parents=True)
    (root / "toolkit" / "bin" / "python").symlink_to(sys.executable)
    units = tmp_path / "units"
    units.mkdir()
    for rel, text in files.items():
        if rel.startswith("systemd/"):
            (units / Path(rel).name).write_text(text.replace("ExecStart=/usr/local/bin/bun ", "ExecStart=/bin/true "))
    instance = units / f"tova-{manifest.app}@{ports[0]}.service"
    instance.symlink_to(units / f"tova-{manifest.app}@.service")
    return units, files


@pytest.mark.parametrize("case", ["minimal", "full", "cors-any"])
def test_systemd_analyze_verify(case, tmp_path):
    tool = need("systemd-analyze")
    manifest, ports, _ = CASES[case]
    units, _ = units_dir(tmp_path, manifest, ports)
    names = [f"tova-{manifest.app}@{ports[0]}.service", "tova-health.service"]
    res = subprocess.run([tool, "verify", *[f"./{n}" for n in names]], cwd=units, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout + res.stderr == "", res.stdout + res.stderr


def test_systemd_verify_would_complain(tmp_path):
    """The oracle has teeth: a broken Environment= line is reported."""
    tool = need("systemd-analyze")
    bad = tmp_path / "bad.service"
    bad.write_text('[Service]\nExecStart=/bin/true\nEnvironment="A=b\n')
    res = subprocess.run([tool, "verify", "./bad.service"], cwd=tmp_path, capture_output=True, text=True)
    assert "Invalid syntax" in res.stdout + res.stderr


@pytest.mark.parametrize("case", ["minimal", "full"])
def test_systemd_security_exposure_at_most_2(case, tmp_path):
    tool = need("systemd-analyze")
    manifest, ports, _ = CASES[case]
    units, _ = units_dir(tmp_path, manifest, ports)
    res = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", f"./tova-{manifest.app}@{ports[0]}.service"],
        cwd=units,
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", res.stdout + res.stderr)
    assert found, res.stdout + res.stderr
    assert float(found.group(1)) <= 2.0


def test_caddy_accepts_the_global_options_imported_first(tmp_path):
    """As provision.sh writes /etc/caddy/Caddyfile: our global options imported first, the
    distribution's own site, our sites imported last."""
    caddy = need("caddy")
    manifest, ports, settings = CASES["tls-internal"]
    files = render_all(manifest, ports, settings)
    out = tmp_path / "rendered"
    write_rendered(files, out)
    master = (out / "caddy/Caddyfile").read_text()
    (out / "caddy/Caddyfile").write_text(master.replace('"/opt/tova/caddy/apps/', f'"{out}/caddy/apps/'))
    config = tmp_path / "Caddyfile"
    config.write_text(f"import {out}/caddy/global.caddy\n\n:80 {{\n\trespond hi\n}}\n\nimport {out}/caddy/Caddyfile\n")
    res = subprocess.run([caddy, "adapt", "--adapter", "caddyfile", "--config", str(config)],
                         capture_output=True, text=True, env=caddy_env(tmp_path))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["admin"] == {"listen": "unix//run/caddy-admin/admin.sock"}
    assert data["apps"]["tls"]["disable_ocsp_stapling"] is True
    assert data["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False
