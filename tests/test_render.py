"""render_all: the files, their shape, and provision.sh's behaviour where it can be run
safely (argument handling, embedded files, the secrets layer in a temp root)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tova.errors import ConfigError, TovaError
from tova.manifest import Database, HealthCheck, Manifest, Proxy, Secrets
from tova.render import app_user, render_all, write_rendered
from tova.settings import ServerSettings

SETTINGS = ServerSettings()


def minimal() -> Manifest:
    return Manifest(env="prod", app="blog", project="blog", server="root@h", domain="blog.example.com")


def full() -> Manifest:
    return Manifest(
        env="prod",
        app="shop-2",
        project="shop",
        server="root@h",
        domain="shop.example.com",
        instances=3,
        memory_bytes=256 * 1024 * 1024,
        health=HealthCheck(path="/health/ready", interval=15, timeout=3),
        env_vars=(("NODE_ENV", "production"), ("GREETING", 'say "hi" 100% $(id)')),
        databases=(
            Database("postgres", name="shop_prod", port=5433),
            Database("redis", maxmemory_bytes=64 * 1024 * 1024),
            Database("sqlite", paths=("app.db", "cache/c.db")),
        ),
        proxy=Proxy(
            websocket=True,
            sse=True,
            sse_paths=("/events",),
            static=True,
            cors_origins=("https://a.example.com", "http://localhost:5173"),
        ),
        secrets=Secrets(required=("JWT_SECRET",), auto=("DATABASE_URL", "REDIS_URL", "SESSION_KEY")),
    )


def keys_for(app: str) -> set[str]:
    return {
        "provision.sh",
        "caddy/Caddyfile",
        f"caddy/apps/{app}.caddy",
        f"systemd/tova-{app}@.service",
        "systemd/tova-health.service",
        "env/deploy.env",
        ".tova-manifest.json",
        "caddy/global.caddy",
        "systemd/caddy.service.d/tova.conf",
        "systemd/tova-upstreams.service",
    }


@pytest.mark.parametrize("manifest", [minimal(), full()])
def test_keys_and_bash_syntax(manifest, tmp_path):
    files = render_all(manifest, [3000 + i for i in range(manifest.instances)], SETTINGS)
    assert set(files) == keys_for(manifest.app)
    write_rendered(files, tmp_path)
    for script in ("provision.sh",):
        subprocess.run(["bash", "-n", str(tmp_path / script)], check=True)
        assert stat.S_IMODE((tmp_path / script).stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "caddy/Caddyfile").stat().st_mode) == 0o644


def test_manifest_json_is_manifest_plus_ports():
    m = full()
    data = json.loads(render_all(m, [3000, 3001, 3002], SETTINGS)[".tova-manifest.json"])
    assert data.pop("ports") == [3000, 3001, 3002]
    assert data == json.loads(m.to_json())


def test_header_names_app_and_infra_hash():
    m = full()
    text = render_all(m, [3000, 3001, 3002], SETTINGS)["provision.sh"]
    head = text.split("set -Eeuo pipefail")[0]
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "shop-2" in head and m.infra_hash() in head
    for layer in ("system", "databases", "app", "secrets", "proxy", "services"):
        assert f"#   {layer}" in head
        assert f"\nlayer_{layer}() {{" in text


def test_no_curl_pipe_sh_and_bun_pinned():
    text = render_all(full(), [3000, 3001, 3002], SETTINGS)["provision.sh"]
    assert "| sh" not in text and "| bash" not in text
    assert "readonly BUN_VERSION=1.4.5" in text
    assert "npm install -g --no-fund --no-audit --loglevel=error --cache \"$tmp\" \"bun@$BUN_VERSION\"" in text
    archive = replace(
        SETTINGS, bun_source="archive", bun_archive_url="https://example.invalid/bun.zip", bun_archive_sha256="a" * 64
    )
    text = render_all(full(), [3000, 3001, 3002], archive)["provision.sh"]
    assert "sha256sum --check" in text and "npm install" not in text
    assert "'unzip'" in text or " unzip" in text


def test_unit_content():
    m = full()
    unit = render_all(m, [3000, 3001, 3002], SETTINGS)["systemd/tova-shop-2@.service"]
    lines = unit.splitlines()
    assert "Environment=PORT=%i" in lines
    # The deploy block's values live in a root-only file, never in the world-readable unit.
    assert "GREETING" not in unit
    assert lines.index("EnvironmentFile=/opt/tova/apps/shop-2/.env.deploy") < \
        lines.index("EnvironmentFile=/opt/tova/apps/shop-2/.env.production")
    env = render_all(m, [3000, 3001, 3002], SETTINGS)["env/deploy.env"]
    assert 'GREETING="say \\"hi\\" 100% \\$(id)"' in env.splitlines()
    assert "ExecStart=/usr/local/bin/bun run /opt/tova/apps/shop-2/current/server.js" in lines
    assert "WorkingDirectory=/opt/tova/apps/shop-2/data" in lines  # relative SQLite paths land in data/
    assert lines.index("Environment=NODE_ENV=production") > lines.index("Environment=PORT=%i")
    assert f"MemoryMax={256 * 1024 * 1024}" in lines
    assert "Restart=on-failure" in lines
    assert "User=tova-shop-2" in lines
    assert "ReadWritePaths=/opt/tova/apps/shop-2/data" in lines
    assert not any(line.startswith("MemoryDenyWriteExecute") for line in lines)
    no_restart = render_all(replace(m, restart_on_failure=False), [3000], SETTINGS)
    assert "Restart=no" in no_restart["systemd/tova-shop-2@.service"].splitlines()


def test_one_health_watcher_for_all_apps():
    """The same server-wide unit whatever the app; no per-app timer or script."""
    a = render_all(full(), [3000, 3001, 3002], SETTINGS)
    b = render_all(minimal(), [3003], SETTINGS)
    unit = a["systemd/tova-health.service"]
    assert unit == b["systemd/tova-health.service"]
    lines = unit.splitlines()
    assert "ExecStart=/opt/tova/toolkit/bin/python -m tova.server.watchdog" in lines
    assert "Environment=TOVA_ROOT=/opt/tova" in lines and "Restart=always" in lines
    assert not any("timer" in rel or rel.endswith("health-check.sh") for rel in a)


def test_caddy_site():
    files = render_all(full(), [3000, 3001, 3002], SETTINGS)
    site = files["caddy/apps/shop-2.caddy"]
    assert '"shop.example.com" {' in site
    # No port in the site: Caddy asks tova-upstreams, so a deploy never reloads it.
    assert "3000" not in site
    for line in ("reverse_proxy {", 'dynamic srv "shop-2.tova.internal" {', "refresh 25ms",
                 'resolvers "udp/127.0.0.1:54"', "lb_policy round_robin", "lb_try_duration 10s",
                 "lb_try_interval 100ms", "flush_interval -1", 'header Origin "https://a.example.com"',
                 'root * "/opt/tova/apps/shop-2/current/static"',
                 'header @hashed Cache-Control "public, max-age=31536000, immutable"'):
        assert line in site
    assert files["caddy/Caddyfile"].rstrip().endswith('import "/opt/tova/caddy/apps/*.caddy"')
    bare = render_all(minimal(), [3000], SETTINGS)["caddy/apps/blog.caddy"]
    assert "cors" not in bare and "file_server" not in bare and "flush_interval" not in bare
    # No active checks (Caddy's first one after a boot kept every app out for an interval;
    # the deploy checks instances before Caddy sees them), no passive ones (they would hold
    # requests for their whole fail_duration).
    directives = "\n".join(line for line in site.splitlines() if not line.strip().startswith("#"))
    assert "fail_duration" not in directives and "health_uri" not in directives
    # The admin API: a unix socket only, in caddy.service's 0700 runtime directory.
    assert 'admin "unix//run/caddy-admin/admin.sock"' in files["caddy/global.caddy"]
    assert "ocsp_stapling off" not in files["caddy/global.caddy"]
    internal = render_all(full(), [3000], replace(SETTINGS, tls="internal"))["caddy/global.caddy"]
    assert "ocsp_stapling off" in internal and "skip_install_trust" in internal  # a quiet journal
    dropin = files["systemd/caddy.service.d/tova.conf"]
    assert "RuntimeDirectory=caddy-admin" in dropin and "RuntimeDirectoryMode=0700" in dropin


def test_root_setting_moves_every_path(tmp_path):
    root = str(tmp_path / "srv root%x").replace(" ", "_")
    files = render_all(full(), [3000, 3001, 3002], replace(SETTINGS, root=root))
    for rel, text in files.items():
        if rel != ".tova-manifest.json":
            assert "/opt/tova" not in text, rel
    assert f"ReadWritePaths={root.replace('%', '%%')}/apps/shop-2/data" in files["systemd/tova-shop-2@.service"]


@pytest.mark.parametrize(
    "change, ports",
    [
        (lambda m: replace(m, app="Bad_App"), [3000]),
        (lambda m: m, []),
        (lambda m: m, [3000, 3000]),
        (lambda m: m, [70000]),
        (lambda m: replace(m, env_vars=(("BAD-NAME", "x"),)), [3000]),
        (lambda m: replace(m, env_vars=(("A", "two\nlines"),)), [3000]),
        (lambda m: replace(m, secrets=Secrets(required=("$(id)",))), [3000]),
        (lambda m: replace(m, proxy=Proxy(cors_origins=("*.example.com",))), [3000]),
        (lambda m: replace(m, proxy=Proxy(cors_origins=("https://{host}",))), [3000]),
        (lambda m: replace(m, health=HealthCheck(path="healthz")), [3000]),
        (lambda m: replace(m, health=HealthCheck(interval=0)), [3000]),
        (lambda m: replace(m, databases=(Database("sqlite", paths=("../x.db",)),)), [3000]),
        (lambda m: replace(m, databases=(Database("postgres", name="x" * 64),)), [3000]),
        (lambda m: replace(m, databases=(Database("mysql", name="x" * 65),)), [3000]),
        (lambda m: replace(m, databases=(Database("mysql", name="a'; DROP USER root; --"),)), [3000]),
        (lambda m: replace(m, databases=(Database("mysql", name="mysql"),)), [3000]),
        (lambda m: replace(m, databases=(Database("mysql", name="performance_schema"),)), [3000]),
    ],
)
def test_bad_input_is_a_config_error(change, ports):
    with pytest.raises(ConfigError) as info:
        render_all(change(minimal()), ports, SETTINGS)
    assert isinstance(info.value, TovaError) and info.value.hint


def test_bad_settings():
    with pytest.raises(ConfigError):
        render_all(minimal(), [3000], replace(SETTINGS, bun_source="archive"))
    with pytest.raises(ConfigError):
        render_all(minimal(), [3000], replace(SETTINGS, root="/srv/with space"))


def test_app_user_fits_useradd():
    assert app_user("blog") == "tova-blog"
    long = app_user("a" * 40)
    assert len(long) <= 32 and long.startswith("tova-aaa")
    assert app_user("a" * 40) != app_user("a" * 39 + "b")


def test_write_rendered_refuses_escaping_paths(tmp_path):
    with pytest.raises(ConfigError):
        write_rendered({"../x": "y"}, tmp_path)


# ---- running pieces of provision.sh: only argument handling, and functions that touch
# nothing but files below a temp root (never the system layers).


def run_functions(script: Path, body: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Load provision.sh's definitions without running main, then run body."""
    prog = f'source <(sed \'$d\' {script!s})\n{body}\n'
    return subprocess.run(["bash", "-c", prog], capture_output=True, text=True, env=env)


@pytest.fixture
def rendered(tmp_path):
    root = tmp_path / "root"
    files = render_all(full(), [3000, 3001, 3002], replace(SETTINGS, root=str(root)))
    out = tmp_path / "out"
    write_rendered(files, out)
    return files, out / "provision.sh", root


def test_arguments(rendered):
    _, script, _ = rendered
    assert subprocess.run([str(script), "--help"], capture_output=True).returncode == 0
    bad = subprocess.run([str(script), "--only", "system,bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown layer: bogus" in bad.stderr
    assert subprocess.run([str(script), "--frobnicate"], capture_output=True).returncode == 2


def test_embedded_files_come_out_byte_exact(rendered):
    files, script, _ = rendered
    for func, rel in [
        ("write_caddy_master", "caddy/Caddyfile"),
        ("write_caddy_app", "caddy/apps/shop-2.caddy"),
        ("write_app_unit", "systemd/tova-shop-2@.service"),
        ("write_health_service", "systemd/tova-health.service"),
    ]:
        res = run_functions(script, func)
        assert res.returncode == 0, res.stderr
        assert res.stdout == files[rel], func


@pytest.mark.skipif(os.geteuid() != 0, reason="the secrets layer sets root ownership")
def test_secrets_layer_in_temp_root(rendered):
    _, script, root = rendered
    app_dir = root / "apps" / "shop-2"
    app_dir.mkdir(parents=True)
    env_file = app_dir / ".env.production"
    env_file.write_text("DATABASE_URL=postgresql://x\nREDIS_URL=redis://y")  # no final newline
    env_file.chmod(0o644)

    first = run_functions(script, "layer_secrets")
    assert first.returncode == 3, first.stderr
    assert "JWT_SECRET: tova env prod set JWT_SECRET=..." in first.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    lines = env_file.read_text().splitlines()
    assert lines[:2] == ["DATABASE_URL=postgresql://x", "REDIS_URL=redis://y"]
    session = [line for line in lines if line.startswith("SESSION_KEY=")]
    assert len(session) == 1 and len(session[0]) == len("SESSION_KEY=") + 64
    assert session[0].split("=", 1)[1] not in first.stdout + first.stderr

    with env_file.open("a") as f:
        f.write("JWT_SECRET=s3cr3t\n")
    before = env_file.read_text()
    second = run_functions(script, "layer_secrets; echo CHANGES=$CHANGES")
    assert second.returncode == 0, second.stderr
    assert "CHANGES=0" in second.stdout and "ok (unchanged)" in second.stdout
    assert "changed" not in second.stdout.replace("unchanged", "")
    assert env_file.read_text() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="install_file sets root ownership")
def test_install_file_writes_only_changes(rendered, tmp_path):
    _, script, _ = rendered
    dest = tmp_path / "f.txt"
    body = f"""
install_file {dest} 0640 root:root < <(printf 'a\\n'); echo "1:$FILE_CHANGED"
install_file {dest} 0640 root:root < <(printf 'a\\n'); echo "2:$FILE_CHANGED"
chmod 0600 {dest}
install_file {dest} 0640 root:root < <(printf 'a\\n'); echo "3:$FILE_CHANGED"
install_file {dest} 0640 root:root < <(printf 'b\\n'); echo "4:$FILE_CHANGED"
"""
    res = run_functions(script, body)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1:1", "2:0", "3:1", "4:1"]
    assert dest.read_text() == "b\n" and stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert list(tmp_path.glob(".tova-new.*")) == []
