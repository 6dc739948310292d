"""Names derived from an app name, shared by the renderer and the server side."""

from __future__ import annotations

import hashlib

MAX_USER = 32  # useradd's limit


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


def pg_role(app: str) -> str:
    return "tova_" + app.replace("-", "_")


def redis_user(app: str) -> str:
    return f"tova-{app}"


def pg_database(app: str, name: str | None = None) -> str:
    """The app's PostgreSQL database: the deploy block's `name`, else <app>_db."""
    return name or f"{app.replace('-', '_')}_db"
