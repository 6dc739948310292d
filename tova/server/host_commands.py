"""Every command the server adapter runs on the host, built by a pure function that returns
an argv list (never a shell string): systemctl, journalctl, runuser + psql / pg_dump,
mariadb / mariadb-dump, redis-cli, openssl, useradd and provision.sh. Values travel as
separate arguments; the SQL texts quote their values with each server's rules (tests/test_host_commands.py holds
each command as an exact list, hostile and non-ASCII names included). Caddy itself is
validated and reloaded by provision.sh and through `systemctl reload caddy`."""

from __future__ import annotations

from pathlib import Path

from tova.naming import redis_socket, redis_unit, unit

# What `instance_info` reads from systemd about one instance.
INSTANCE_PROPERTIES = "ActiveState,MemoryCurrent,CPUUsageNSec,ActiveEnterTimestampMonotonic,MainPID"


def sql_literal(text: str) -> str:
    """A PostgreSQL string literal: single quotes, ' doubled (standard_conforming_strings)."""
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A PostgreSQL quoted identifier: double quotes, " doubled."""
    return '"' + name.replace('"', '""') + '"'


# --- systemd -------------------------------------------------------------------------

# Enabling and disabling instances only adds or removes the [Install] symlink that the next
# boot reads: --no-reload spares a whole-manager daemon-reload per deploy (about 0.2 s on a
# server with 30 apps, growing with every app); the instances are started and stopped
# explicitly.
NO_RELOAD = "--no-reload"


def restart_instance(app: str, port: int) -> list[list[str]]:
    """Enable (so it comes back after a reboot), then restart the instance on `port`."""
    return [["systemctl", "enable", "--quiet", NO_RELOAD, unit(app, port)],
            ["systemctl", "restart", unit(app, port)]]


def stop_instance(app: str, port: int) -> list[list[str]]:
    return [["systemctl", "disable", "--quiet", NO_RELOAD, unit(app, port)],
            ["systemctl", "stop", unit(app, port)]]


def start_instances(app: str, ports: list[int]) -> list[str]:
    """(Re)start the instances on `ports` together (one job each)."""
    return ["systemctl", "restart", *(unit(app, p) for p in ports)]


def commit_instances(app: str, serving: list[int], retired: list[int]) -> list[list[str]]:
    """Enable the serving instances; disable the retired ones and queue their stop
    without waiting for their drain."""
    argvs = []
    if serving:
        argvs.append(["systemctl", "enable", "--quiet", NO_RELOAD, *(unit(app, p) for p in serving)])
    if retired:
        argvs.append(["systemctl", "disable", "--quiet", NO_RELOAD, "--now", "--no-block",
                      *(unit(app, p) for p in retired)])
    return argvs


def stop_instances(app: str, ports: list[int]) -> list[str]:
    """Disable and stop the instances on `ports` together; systemctl waits for each to drain."""
    return ["systemctl", "disable", "--quiet", NO_RELOAD, "--now", *(unit(app, p) for p in ports)]


def instance_journal(app: str, port: int, since: float, lines: int) -> list[str]:
    """The last lines of one instance (and systemd's about it) since an epoch time."""
    return ["journalctl", "--no-pager", "--quiet", "-o", "cat", "-u", unit(app, port),
            "--since", f"@{since:.3f}", "-n", str(lines)]


def instance_active(app: str, port: int) -> list[str]:
    return ["systemctl", "is-active", "--quiet", unit(app, port)]


def instance_show(app: str, port: int) -> list[str]:
    return ["systemctl", "show", unit(app, port), "-p", INSTANCE_PROPERTIES]


def service_show(service: str) -> list[str]:
    return ["systemctl", "show", service, "-p", "LoadState,ActiveState"]


def reload_service(service: str) -> list[str]:
    return ["systemctl", "reload", service]


def disable_now(unit_name: str) -> list[str]:
    return ["systemctl", "disable", "--now", unit_name]


def daemon_reload() -> list[str]:
    return ["systemctl", "daemon-reload"]


def journal(app: str, ports: list[int], since: str | None, follow: bool) -> list[str]:
    argv = ["journalctl", "--no-pager", "-o", "short-iso"]
    for p in ports:
        argv += ["-u", unit(app, p)]
    if since:
        argv.append(f"--since={since}")  # one argument, even for "-2min"
    if follow:
        argv.append("--follow")
    return argv


# --- provisioning and users ----------------------------------------------------------

def provision(script: Path, layers: list[str]) -> list[str]:
    return ["bash", str(script), "--only", ",".join(layers)]


def add_system_user(user: str) -> list[str]:
    """A system user with its own group, no home and no login shell."""
    return ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
            "--shell", "/usr/sbin/nologin", user]


# --- PostgreSQL (as the postgres user) -------------------------------------------------

def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv]


def pg_database_size(db: str, port: int) -> list[str]:
    return _as_postgres(["psql", "-p", str(port), "-XAtq", "-c", f"SELECT pg_database_size({sql_literal(db)})"])


def pg_dump(db: str, port: int) -> list[str]:
    return _as_postgres(["pg_dump", "-p", str(port), db])


def pg_drop_database(db: str, port: int) -> list[str]:
    return _as_postgres(["psql", "-p", str(port), "-v", "ON_ERROR_STOP=1",
                         "-c", f"DROP DATABASE IF EXISTS {sql_ident(db)}"])


def pg_drop_role(role: str, port: int) -> list[str]:
    return _as_postgres(["psql", "-p", str(port), "-v", "ON_ERROR_STOP=1",
                         "-c", f"DROP ROLE IF EXISTS {sql_ident(role)}"])


# --- MariaDB / MySQL (root over the local socket) -------------------------------------

def mysql_ident(name: str) -> str:
    """A MariaDB quoted identifier: backticks, ` doubled."""
    return "`" + name.replace("`", "``") + "`"


def mysql_literal(text: str) -> str:
    """A MariaDB string literal: backslashes escaped (it reads \\ escapes), ' doubled."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def mariadb_database_size(db: str) -> list[str]:
    """Bytes of the database's tables and indexes (what PostgreSQL's pg_database_size counts)."""
    return ["mariadb", "--batch", "--skip-column-names", "-e",
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
            f"WHERE table_schema = {mysql_literal(db)}"]


def mariadb_dump(db: str) -> list[str]:
    return ["mariadb-dump", "--single-transaction", "--databases", db]


def mariadb_drop(db: str, user: str) -> list[str]:
    """Drop the app's database and its user (which connects from 127.0.0.1)."""
    return ["mariadb", "-e", f"DROP DATABASE IF EXISTS {mysql_ident(db)}; "
                             f"DROP USER IF EXISTS {mysql_literal(user)}@'127.0.0.1';"]


# --- Redis -----------------------------------------------------------------------------

def redis_cli(app: str, *args: str) -> list[str]:
    """redis-cli on the app's own instance (root may use its socket)."""
    return ["redis-cli", "-s", redis_socket(app), *args]


def redis_stop(app: str) -> list[str]:
    return ["systemctl", "disable", "--now", redis_unit(app)]


# --- certificates ----------------------------------------------------------------------

def certificate_end_date(cert: Path) -> list[str]:
    return ["openssl", "x509", "-enddate", "-noout", "-in", str(cert)]
