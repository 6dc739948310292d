"""Names derived from an app name, shared by the renderer and the server side."""

from __future__ import annotations

import hashlib

MAX_USER = 32  # useradd's limit


def app_user(app: str) -> str:
    """The app's system user: tova-<app>, shortened with a hash past useradd's limit."""
    name = f"tova-{app}"
    if len(name) <= MAX_USER:
        return name
    digest = hashlib.sha256(app.encode()).hexdigest()[:8]
    return f"tova-{app[:MAX_USER - 14]}-{digest}"


def pg_role(app: str) -> str:
    return "tova_" + app.replace("-", "_")


def redis_user(app: str) -> str:
    return f"tova-{app}"


def pg_database(app: str, name: str | None = None) -> str:
    """The app's PostgreSQL database: the deploy block's `name`, else <app>_db."""
    return name or f"{app.replace('-', '_')}_db"
