"""Every row of the design's inference table, on Programs built directly."""

import pytest

from tests.builders import LOC, body, deploy, value
from tova.config import build_config
from tova.errors import ConfigError, Location
from tova.infer import build_manifest
from tova.lang.program import (
    AuthDecl,
    Body,
    BrowserBlock,
    DataBlock,
    DataSource,
    DbDecl,
    Field,
    Program,
    SecurityBlock,
    ServerBlock,
    SseDecl,
    SubBlock,
)


def db_decl(**fields):
    return DbDecl(tuple(Field(k, value(v), LOC) for k, v in fields.items()), LOC)


_DEFAULT_SERVERS = (ServerBlock(None, LOC),)


def program(tmp_path, *, servers=_DEFAULT_SERVERS, deploys=None, **kw):
    return Program(project_name="myapp", root=str(tmp_path), source_dir=str(tmp_path),
                   deploys=tuple(deploys or [deploy()]), servers=tuple(servers), **kw)


def manifest(prog, env="prod"):
    return build_manifest(prog, build_config(prog.deploys, env, prog.project_name), prog.root)


def test_server_block_means_bun_caddy_ufw(tmp_path):
    m = manifest(program(tmp_path))
    assert m.system == ("bun", "caddy", "ufw")
    assert m.databases == () and m.secrets.required == () and m.secrets.auto == ()


def test_no_server_block_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no server block"):
        manifest(program(tmp_path, servers=()))


@pytest.mark.parametrize("fields", [{"driver": "postgres"}, {"driver": "postgres", "type": "postgresql"}])
def test_postgres(tmp_path, fields):
    m = manifest(program(tmp_path, servers=[ServerBlock(None, LOC, dbs=(db_decl(**fields),))]))
    pg = m.database("postgres")
    assert (pg.name, pg.port) == ("myapp_db", 5432)
    assert "postgresql" in m.system and m.secrets.auto == ("DATABASE_URL",)


def test_redis_and_sqlite_paths(tmp_path):
    d = deploy(db=Body((), (SubBlock("redis", LOC, body({})),)))
    servers = [ServerBlock(None, LOC, dbs=(db_decl(driver="anything-else"),)),
               ServerBlock("api", LOC, dbs=(db_decl(path="app.db"), db_decl(driver="sqlite", path="db/b.db")))]
    m = manifest(program(tmp_path, servers=servers, deploys=[d]))
    assert [d.engine for d in m.databases] == ["redis", "sqlite"]
    assert m.database("sqlite").paths == ("app.db", "db/b.db")
    assert m.system == ("bun", "caddy", "ufw", "redis") and m.secrets.auto == ("REDIS_URL",)


@pytest.mark.parametrize("fields, hint", [
    ({"type": "postgres"}, 'driver: "postgres"'),
    ({"type": "postgresql", "driver": "sqlite"}, 'driver: "postgres"'),
    ({"type": "redis"}, "db { redis { } }"),
    ({"driver": "postgres", "type": "sqlite"}, "driver:"),
])
def test_type_disagreeing_with_driver_is_a_located_error(tmp_path, fields, hint):
    """The compiler's code generator reads driver: only (issue 9, point 7)."""
    with pytest.raises(ConfigError) as info:
        manifest(program(tmp_path, servers=[ServerBlock(None, LOC, dbs=(db_decl(**fields),))]))
    assert "ignored by the Tova compiler" in info.value.message and hint in info.value.hint
    assert info.value.loc is not None


def test_mysql_gets_mariadb_unless_the_database_is_elsewhere(tmp_path):
    m = manifest(program(tmp_path, servers=[ServerBlock(None, LOC, dbs=(db_decl(driver="mysql"),))]))
    assert [(d.engine, d.name) for d in m.databases] == [("mysql", "myapp_db")]
    assert "mariadb" in m.system and m.secrets.auto == ("DATABASE_URL",)
    d = deploy(env={"DATABASE_URL": "mysql://db.example.com/app"})
    m = manifest(program(tmp_path, servers=[ServerBlock(None, LOC, dbs=(db_decl(driver="mysql"),))], deploys=[d]))
    assert m.databases == ()


def test_database_urls_in_env_mean_external_databases(tmp_path):
    """DATABASE_URL / REDIS_URL in env { }: no engine provisioned, the plan says so (point 5)."""
    from tova.plan import plan_dict, render_plan

    d = deploy(env={"DATABASE_URL": "postgres://db.example.com/shop", "REDIS_URL": "redis://cache:6379"},
               db=Body((), (SubBlock("sqlite", LOC, body({"path": "x.db"})),)))
    servers = [ServerBlock(None, LOC, dbs=(db_decl(driver="postgres"),))]
    m = manifest(program(tmp_path, servers=servers, deploys=[d]))
    assert [x.engine for x in m.databases] == ["sqlite"]
    assert m.system == ("bun", "caddy", "ufw") and m.secrets.auto == ()
    assert plan_dict(m, [3001], "1.1", None)["external_databases"] == ["DATABASE_URL", "REDIS_URL"]
    text = render_plan(m, [3001], "1.1", [])
    assert "external via DATABASE_URL" in text and "external via REDIS_URL" in text
    assert "PostgreSQL" not in text


def test_external_url_and_engine_override_contradict(tmp_path):
    d = deploy(env={"REDIS_URL": "redis://cache:6379"}, db=Body((), (SubBlock("redis", LOC, body({})),)))
    with pytest.raises(ConfigError, match="contradict"):
        manifest(program(tmp_path, deploys=[d]))


def test_literal_url_means_external_postgres(tmp_path):
    servers = [ServerBlock(None, LOC, dbs=(db_decl(driver="postgres", url="postgres://elsewhere/x"),))]
    assert manifest(program(tmp_path, servers=servers)).databases == ()


def test_overrides_merge_and_never_drop(tmp_path):
    d = deploy(db=Body((), (SubBlock("postgres", LOC, body({"name": "shop_prod", "port": 5433})),
                            SubBlock("redis", LOC, body({"maxmemory": "256mb"})))))
    servers = [ServerBlock(None, LOC, dbs=(db_decl(driver="postgres"), db_decl(path="x.db")))]
    m = manifest(program(tmp_path, servers=servers, deploys=[d]))
    assert [x.engine for x in m.databases] == ["postgres", "redis", "sqlite"]
    assert (m.database("postgres").name, m.database("postgres").port) == ("shop_prod", 5433)
    assert m.database("redis").maxmemory_bytes == 256 * 1024**2
    assert m.database("sqlite").paths == ("x.db",)


def test_ws_sse_browser_cors(tmp_path):
    servers = [ServerBlock(None, LOC, websockets=(LOC,), sse=(SseDecl("/events", LOC), SseDecl(None, LOC)))]
    sec = SecurityBlock(LOC, cors_origins=(value("https://a.com"), value("https://b.com:8443")))
    m = manifest(program(tmp_path, servers=servers, browsers=(BrowserBlock(None, LOC),), securities=(sec,)))
    assert m.proxy.websocket and m.proxy.sse and m.proxy.static
    assert m.proxy.sse_paths == ("/events",)
    assert m.proxy.cors_origins == ("https://a.com", "https://b.com:8443")


@pytest.mark.parametrize("origin", ["https://a.com\nevil", "https://a.com}", "javascript:x", 'https://"a'])
def test_hostile_cors_origin_rejected(tmp_path, origin):
    sec = SecurityBlock(LOC, cors_origins=(value(origin),))
    with pytest.raises(ConfigError, match="cors origin"):
        manifest(program(tmp_path, securities=(sec,)))


def test_auth_secrets(tmp_path):
    sec = SecurityBlock(LOC, auths=(AuthDecl("jwt", (), LOC), AuthDecl("api_key", ("API_KEYS", "PORT"), LOC)))
    m = manifest(program(tmp_path, securities=(sec,)))
    assert m.secrets.required == ("JWT_SECRET", "API_KEYS")


def test_data_files(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a\n")
    data = DataBlock(LOC, sources=(DataSource("x", "data/x.csv", LOC), DataSource("r", "https://e.com/r.json", LOC),
                                   DataSource("y", None, LOC)))
    assert manifest(program(tmp_path, datas=(data,))).data_files == ("data/x.csv",)


@pytest.mark.parametrize("path, message", [("missing.csv", "not in the project"), ("../x.csv", "relative path"),
                                           ("/etc/passwd", "relative path")])
def test_bad_data_files(tmp_path, path, message):
    data = DataBlock(LOC, sources=(DataSource("x", path, Location("src/d.tova", 3, 5)),))
    with pytest.raises(ConfigError, match=message) as info:
        manifest(program(tmp_path, datas=(data,)))
    assert str(info.value.loc) == "src/d.tova:3:5"


def test_instances_and_env(tmp_path):
    m = manifest(program(tmp_path, deploys=[deploy(fields={"instances": 3}, env={"NODE_ENV": "production"})]))
    assert m.instances == 3 and m.env_vars == (("NODE_ENV", "production"),)
