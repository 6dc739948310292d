"""Every host command the server adapter runs, as the exact argv list it is built as
(tova/server/host_commands.py): values are separate arguments, never parts of a shell
string, and the two SQL texts quote their value. Hostile and non-ASCII names included."""

from __future__ import annotations

from pathlib import Path

import pytest

from tova.server import host_commands as cmd

HOSTILE_DB = 'we"ird\'; DROP DATABASE x; --'
UNICODE_DB = "café_données"


def test_rollout_commands():
    assert cmd.start_instances("a", [3002, 3003]) == [
        "systemctl", "restart", "tova-a@3002.service", "tova-a@3003.service"]
    assert cmd.commit_instances("a", [3002, 3003], [3000]) == [
        ["systemctl", "enable", "--quiet", "--no-reload", "tova-a@3002.service", "tova-a@3003.service"],
        ["systemctl", "disable", "--quiet", "--no-reload", "--now", "--no-block", "tova-a@3000.service"]]
    assert cmd.commit_instances("a", [3002], []) == [
        ["systemctl", "enable", "--quiet", "--no-reload", "tova-a@3002.service"]
    ]
    assert cmd.stop_instances("a", [3000]) == [
        "systemctl", "disable", "--quiet", "--no-reload", "--now", "tova-a@3000.service"
    ]
    assert cmd.instance_journal("a", 3002, 1700000000.25, 12) == [
        "journalctl", "--no-pager", "--quiet", "-o", "cat", "-u", "tova-a@3002.service",
        "--since", "@1700000000.250", "-n", "12"]


def test_systemd_instance_commands():
    assert cmd.restart_instance("my-app", 3001) == [
        ["systemctl", "enable", "--quiet", "--no-reload", "tova-my-app@3001.service"],
        ["systemctl", "restart", "tova-my-app@3001.service"]]
    assert cmd.stop_instance("my-app", 3001) == [
        ["systemctl", "disable", "--quiet", "--no-reload", "tova-my-app@3001.service"],
        ["systemctl", "stop", "tova-my-app@3001.service"]]
    assert cmd.instance_active("a", 3000) == ["systemctl", "is-active", "--quiet", "tova-a@3000.service"]
    assert cmd.instance_show("a", 3000) == [
        "systemctl", "show", "tova-a@3000.service", "-p",
        "ActiveState,MemoryCurrent,CPUUsageNSec,ActiveEnterTimestampMonotonic,MainPID"]


def test_systemd_service_commands():
    assert cmd.service_show("redis-server") == ["systemctl", "show", "redis-server", "-p", "LoadState,ActiveState"]
    assert cmd.reload_service("caddy") == ["systemctl", "reload", "caddy"]
    assert cmd.disable_now("tova-a-health.timer") == ["systemctl", "disable", "--now", "tova-a-health.timer"]
    assert cmd.daemon_reload() == ["systemctl", "daemon-reload"]


def test_journal_keeps_every_value_one_argument():
    assert cmd.journal("a", [3000, 3001], "1 hour ago; rm -rf /", True) == [
        "journalctl", "--no-pager", "-o", "short-iso", "-u", "tova-a@3000.service",
        "-u", "tova-a@3001.service", "--since=1 hour ago; rm -rf /", "--follow"]
    assert cmd.journal("a", [3000], "-2min", False) == [
        "journalctl", "--no-pager", "-o", "short-iso", "-u", "tova-a@3000.service", "--since=-2min"]
    assert cmd.journal("a", [], None, False) == ["journalctl", "--no-pager", "-o", "short-iso"]


def test_provision_and_users():
    assert cmd.provision(Path("/opt/tova/apps/a b/provision.sh"), ["proxy", "services"]) == [
        "bash", "/opt/tova/apps/a b/provision.sh", "--only", "proxy,services"]
    assert cmd.add_system_user("tova-build-my-app") == [
        "useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
        "--shell", "/usr/sbin/nologin", "tova-build-my-app"]


def test_postgres_commands_quote_names_for_sql_and_pass_them_whole():
    assert cmd.pg_database_size(HOSTILE_DB, 5433) == [
        "runuser", "-u", "postgres", "--", "psql", "-p", "5433", "-XAtq", "-c",
        "SELECT pg_database_size('we\"ird''; DROP DATABASE x; --')"]
    assert cmd.pg_dump(HOSTILE_DB, 5432) == ["runuser", "-u", "postgres", "--", "pg_dump", "-p", "5432", HOSTILE_DB]
    assert cmd.pg_drop_database(HOSTILE_DB, 5432) == [
        "runuser", "-u", "postgres", "--", "psql", "-p", "5432", "-v", "ON_ERROR_STOP=1", "-c",
        "DROP DATABASE IF EXISTS \"we\"\"ird'; DROP DATABASE x; --\""]
    assert cmd.pg_drop_database(UNICODE_DB, 5432)[-1] == 'DROP DATABASE IF EXISTS "café_données"'
    assert cmd.pg_drop_role("tova_my_app", 5432) == [
        "runuser", "-u", "postgres", "--", "psql", "-p", "5432", "-v", "ON_ERROR_STOP=1", "-c",
        'DROP ROLE IF EXISTS "tova_my_app"']
    assert cmd.pg_database_size(UNICODE_DB, 5432)[-1] == "SELECT pg_database_size('café_données')"


def test_mariadb_database_size_reads_the_schemas_tables():
    assert cmd.mariadb_database_size("my_app") == [
        "mariadb", "--batch", "--skip-column-names", "-e",
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
        "WHERE table_schema = 'my_app'"]
    assert cmd.mariadb_database_size("a'b\\")[-1].endswith("table_schema = 'a''b\\\\'")


def test_mariadb_commands_quote_names_for_sql():
    assert cmd.mariadb_dump("my_app") == ["mariadb-dump", "--single-transaction", "--databases", "my_app"]
    assert cmd.mariadb_drop("my_app", "tova_my_app") == [
        "mariadb", "-e", "DROP DATABASE IF EXISTS `my_app`; DROP USER IF EXISTS 'tova_my_app'@'127.0.0.1';"]
    assert cmd.mariadb_drop("a`b", "u'\\x") == [
        "mariadb", "-e", "DROP DATABASE IF EXISTS `a``b`; DROP USER IF EXISTS 'u''\\\\x'@'127.0.0.1';"]
    assert cmd.mariadb_dump(UNICODE_DB)[-1] == UNICODE_DB


def test_redis_commands():
    """Each app has its own instance: commands go to its socket, never to a shared server."""
    assert cmd.redis_cli("my-app", "DBSIZE") == ["redis-cli", "-s", "/run/redis-tova-my-app/redis.sock", "DBSIZE"]
    assert cmd.redis_stop("my-app") == ["systemctl", "disable", "--now", "redis-server@tova-my-app.service"]


def test_certificate_end_date():
    assert cmd.certificate_end_date(Path("/var/lib/caddy/x y/é.crt")) == [
        "openssl", "x509", "-enddate", "-noout", "-in", "/var/lib/caddy/x y/é.crt"]


@pytest.mark.parametrize("value", [HOSTILE_DB, UNICODE_DB, "", "'", '"', "a\\b"])
def test_sql_quoting_reads_back(value):
    """The quoting rules PostgreSQL applies, checked by undoing them (no server needed)."""
    lit = cmd.sql_literal(value)
    assert lit[0] == lit[-1] == "'" and lit[1:-1].replace("''", "'") == value
    ident = cmd.sql_ident(value)
    assert ident[0] == ident[-1] == '"' and ident[1:-1].replace('""', '"') == value


def test_no_builder_returns_a_shell_string():
    """argv lists all the way down: a shell never sees these values."""
    samples = [cmd.journal("a", [1], "x", True), cmd.provision(Path("/p"), ["app"]), cmd.pg_dump("d", 1),
               *cmd.restart_instance("a", 1), cmd.redis_cli("a", "DBSIZE")]
    for argv in samples:
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        assert argv[0] != "sh" and argv[1:2] != ["-c"]
