"""Names: the rules an app name, an environment name and an environment variable name
follow, and every name derived from an app (system users, units, database role, Redis
user). Shared by the config checks, the renderer, the server side and the client."""

from __future__ import annotations

import hashlib
import re

# App names become directory names, unit names, system users and database names: boring.
APP_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
APP_NAME_RULE = 'lower-case letters, digits and "-", starting with a letter, at most 40 characters'
# Deploy environments (`deploy "prod" { }`) name git remotes and appear in app names.
ENV_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
# Environment variables: what a shell, systemd and a .env file all accept as a name.
ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_USER = 32  # useradd's limit

# Which instances serve each app, as Caddy asks for them (tova.server.upstreams): the SRV
# record <app>.UPSTREAMS_ZONE from a DNS responder on loopback, on a privileged port so no
# app user can stand in for it, at most every UPSTREAMS_REFRESH_MS.
UPSTREAMS_ZONE = "tova.internal"
UPSTREAMS_HOST = "127.0.0.1"
UPSTREAMS_PORT = 54
# A switch reaches users within this (12 ms on average, half of every push's switch-to-live
# time at 50 ms); a busy app costs the responder one query per refresh (about 20 us of CPU
# on the test server: 40 a second, 0.1% of a core), an idle one none.
UPSTREAMS_REFRESH_MS = 25
# Caddy's admin API: a socket in caddy.service's RuntimeDirectory (caddy-dropin.conf.j2).
CADDY_ADMIN_SOCKET = "/run/caddy-admin/admin.sock"


def upstreams_srv(app: str) -> str:
    return f"{app}.{UPSTREAMS_ZONE}"


def is_app_name(name: str) -> bool:
    return APP_NAME_RE.match(name) is not None


def is_env_name(name: str) -> bool:
    return ENV_NAME_RE.match(name) is not None


def is_env_var(name: str) -> bool:
    return ENV_VAR_RE.match(name) is not None


def _user(prefix: str, app: str) -> str:
    """prefix + app, shortened with a hash past useradd's limit."""
    name = f"{prefix}{app}"
    if len(name) <= MAX_USER:
        return name
    digest = hashlib.sha256(app.encode()).hexdigest()[:8]
    return f"{prefix}{app[:MAX_USER - len(prefix) - 9]}-{digest}"


def app_user(app: str) -> str:
    """The app's system user: tova-<app>, shortened with a hash past useradd's limit."""
    return _user("tova-", app)


def build_user(app: str) -> str:
    """The user the app's pushed code is built as: never root, never the app's own user
    (a hostile build must not touch the app's data)."""
    return _user("tova-build-", app)


def unit_template(app: str) -> str:
    """The app's systemd template unit; one instance per port."""
    return f"tova-{app}@.service"


def unit(app: str, port: int) -> str:
    return f"tova-{app}@{port}.service"


def legacy_health_units(app: str) -> tuple[str, str]:
    """The per-app health timer and its service, from before the server-wide watcher."""
    return f"tova-{app}-health.service", f"tova-{app}-health.timer"


def pg_role(app: str) -> str:
    return "tova_" + app.replace("-", "_")


# Each app has its own Redis (Debian's redis-server@ template), reachable only through a
# unix socket of the app's group: no other app can connect, list or flush its keys.
def redis_instance(app: str) -> str:
    return app_user(app)


def redis_unit(app: str) -> str:
    return f"redis-server@{redis_instance(app)}.service"


def redis_socket(app: str) -> str:
    return f"/run/redis-{redis_instance(app)}/redis.sock"


def redis_conf(app: str) -> str:
    return f"/etc/redis/redis-{redis_instance(app)}.conf"


def redis_dir(app: str) -> str:
    return f"/var/lib/redis/{redis_instance(app)}"


def redis_url(app: str) -> str:
    return f"redis+unix://{redis_socket(app)}"


def pg_database(app: str, name: str | None = None) -> str:
    """The app's PostgreSQL database: the deploy block's `name`, else <app>_db."""
    return name or f"{app.replace('-', '_')}_db"


# PostgreSQL's own databases: an app owning one would break the cluster for every app.
RESERVED_PG_DATABASES = frozenset({"postgres", "template0", "template1"})
# MariaDB's own schemas: its grant tables and the server's views of itself.
RESERVED_MYSQL_DATABASES = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
