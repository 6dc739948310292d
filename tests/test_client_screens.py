"""The status screen from `tova-release status --json` as the server sends it."""

from tova.client.screens import status_screen

NOW = 1_800_000_000.0


def status(**over):
    s = {
        "app": "myapp",
        "domain": "myapp.com",
        "version": "v4",
        "env": "prod",
        "instances": [
            {
                "port": 3000,
                "state": "active",
                "memory_bytes": 128 * 1024**2,
                "cpu_percent": 0.3,
                "uptime_seconds": 3 * 86400 + 7 * 3600,
            },
            {
                "port": 3001,
                "state": "active",
                "memory_bytes": 134 * 1024**2,
                "cpu_percent": 0.2,
                "uptime_seconds": 3 * 86400 + 7 * 3600,
            },
        ],
        "databases": [
            {"engine": "postgres", "name": "myapp_db", "state": "active", "size_bytes": 24 * 1024**2},
            {"engine": "redis", "name": None, "state": "active", "keys": 1204, "memory_bytes": 18 * 1024**2},
        ],
        "certificate": {
            "domain": "myapp.com",
            "expires": "2026-05-29T12:00:00+00:00",
            "days_left": 90,
            "state": "valid",
        },
        "last_deploy": {"outcome": "ok", "start": NOW - 3 * 86400 - 60, "end": NOW - 3 * 86400},
        "releases_kept": 4,
        "keep_releases": 5,
    }
    s.update(over)
    return s


def test_the_design_status_screen():
    text = status_screen(status(), now=NOW)
    assert "myapp — https://myapp.com" in text
    assert "Status:     ● running (v4)" in text
    assert "Instances:  2/2 healthy" in text
    assert "@3000   ● running" in text and "mem: 128 MB" in text and "cpu: 0.3%" in text
    assert "PostgreSQL  ● running   myapp_db   size: 24 MB" in text
    assert "Redis       ● running   keys: 1,204   mem: 18 MB" in text
    assert "myapp.com   ● valid   expires: 2026-05-29 (90 days)" in text
    assert "Releases:     4 (keeping last 5)" in text


def test_status_screen_shows_mariadb_like_postgresql():
    dbs = [{"engine": "mysql", "name": "tally_db", "state": "active", "size_bytes": 48 * 1024}]
    text = status_screen(status(databases=dbs), now=NOW)
    assert "MariaDB     ● running   tally_db   size: 48 KB" in text, text


def test_degraded_and_not_deployed():
    one_down = status()
    one_down["instances"][1] = {"port": 3001, "state": "failed", "memory_bytes": None, "cpu_percent": None,
                                "uptime_seconds": None}
    text = status_screen(one_down, now=NOW)
    assert "○ degraded (v4)" in text or "degraded (v4)" in text
    assert "Instances:  1/2 healthy" in text and "@3001   ○ failed" in text
    assert "not deployed" in status_screen(status(version=None, instances=[], last_deploy=None), now=NOW)


def test_status_screen_says_what_a_repair_found_and_did():
    last = {"outcome": "repaired", "start": NOW - 120, "end": NOW - 60, "version": "v5",
            "found": ["the registry recorded v4 as live but current is v5"],
            "done": ["started v5 (health-checked) on ports 3002, 3003, stopped the rest"]}
    text = status_screen(status(last_deploy=last), now=NOW)
    assert ("— repaired: found the registry recorded v4 as live but current is v5; "
            "started v5 (health-checked) on ports 3002, 3003, stopped the rest") in text, text


def test_list_shows_memory_and_disk_per_app():
    from tova.client.screens import overview_screen

    text = overview_screen("srv", {
        "apps": [
            {"app": "shop", "domain": "shop.com", "version": "v3", "instances": 2, "state": "running",
             "memory_bytes": 31 * 1024**2, "memory_limit_bytes": 256 * 1024**2, "disk_bytes": 12 * 1024**2},
            {"app": "old", "domain": "old.com", "version": None, "instances": 1, "state": "stopped"},  # older toolkit
        ],
        "memory": {"used": 900 * 1024**2, "total": 2048 * 1024**2},
        "disk": {"used": 5 * 1024**3, "total": 20 * 1024**3},
    })
    shop = next(line for line in text.splitlines() if "shop" in line)
    assert "mem: 31 MB / 256 MB" in shop and "disk: 12 MB" in shop
    old = next(line for line in text.splitlines() if " old " in line)
    assert "mem: —" in old and "disk: —" in old
    assert "Memory: 900 MB / 2 GB used" in text


def test_status_lists_the_release_npm_dependencies():
    text = status_screen(status(dependencies={"postgres": "3.4.5", "ms": "2.1.3"}), now=NOW)
    assert "  Dependencies: ms 2.1.3, postgres 3.4.5" in text.splitlines()
    assert "Dependencies" not in status_screen(status(), now=NOW)


def test_status_says_which_compiler_and_bun_built_the_release():
    text = status_screen(status(toolchain={"compiler": "0.11.26", "bun": "1.4.5"}), now=NOW)
    assert "  Built with:   Tova compiler 0.11.26, Bun 1.4.5" in text.splitlines()
    assert "Built with" not in status_screen(status(), now=NOW)
