"""Every validation rule of a deploy block, table-driven."""

import pytest

from tests.builders import LOC, body, deploy, expr
from tova.config import build_config, default_app_name, parse_memory
from tova.errors import ConfigError
from tova.lang.program import Body, DeployBlock, SubBlock


def cfg(fields=None, env_name="prod", project="myapp", app=None, **blocks):
    return build_config([deploy(env_name, fields, **blocks)], env_name, project, app=app)


def test_defaults():
    c = cfg()
    assert (c.instances, c.memory_bytes, c.branch, c.health) == (1, 512 * 1024**2, "main", "/healthz")
    assert (c.health_interval, c.health_timeout, c.restart_on_failure, c.keep_releases) == (30, 5, True, 5)
    assert c.app == "myapp" and c.env_vars == ()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"server": None}, "missing `server`"),
        ({"domain": None}, "missing `domain`"),
        ({"instancs": 2}, "unknown deploy property `instancs`"),
        ({"instances": "2"}, "must be an integer"),
        ({"instances": 0}, "between 1 and 32"),
        ({"instances": 33}, "between 1 and 32"),
        ({"restart_on_failure": "yes"}, "true or false"),
        ({"memory": "512"}, "is not a size"),
        ({"memory": "1tb"}, "is not a size"),
        ({"memory": "lots"}, "is not a size"),
        ({"memory": 512}, "must be a string"),
        ({"domain": "my app.com"}, "not a valid DNS name"),
        ({"domain": "a..b"}, "not a valid DNS name"),
        ({"domain": "x.com/path"}, "not a valid DNS name"),
        ({"domain": "x.com\nfoo"}, "not a valid DNS name"),
        ({"domain": "*.*.x.com"}, "not a valid DNS name"),
        ({"domain": "ex{a}.com"}, "not a valid DNS name"),
        ({"server": "root@host;rm -rf /"}, "not an SSH target"),
        ({"server": "-oProxyCommand=x"}, "not an SSH target"),
        ({"server": "root@host:0"}, "between 1 and 65535"),
        ({"server": "root@host:70000"}, "between 1 and 65535"),
        ({"server": "ro ot@host"}, "not an SSH target"),
        ({"branch": "feat..x"}, "not a valid git branch"),
        ({"branch": "-main"}, "not a valid git branch"),
        ({"branch": "a b"}, "not a valid git branch"),
        ({"branch": "x.lock"}, "not a valid git branch"),
        ({"branch": "a~1"}, "not a valid git branch"),
        ({"health": "healthz"}, "starting with '/'"),
        ({"health": "/health z"}, "starting with '/'"),
        ({"health": '/h"x'}, "starting with '/'"),
        ({"health": "/h'x"}, "starting with '/'"),
        ({"health_timeout": 30}, "must be less than health_interval"),
        ({"health_timeout": 10, "health_interval": 5}, "must be less than health_interval"),
        ({"keep_releases": 0}, "keep_releases must be at least 1"),
        # exactly the compiler's fields: `name` moved to tova.toml (issue 9, point 3)
        ({"name": "shop"}, "rejects `name` in a deploy block"),
        ({"memory": "2048gb"}, "more than 1 TB"),
        ({"memory": "99999999999999999999gb"}, "more than 1 TB"),
        ({"health_interval": 86_401}, "between 1 and 86400"),
        ({"health_interval": 0}, "between 1 and 86400"),
        ({"instances": expr("count + 1")}, "must be a literal value"),
        ({"instances": expr("-1")}, "must be a literal value"),
        ({"domain": expr('env("DOMAIN")')}, "must be a literal value"),
        ({"domain": ["a.com"]}, "must be a string"),
    ],
)
def test_rejected(fields, message):
    with pytest.raises(ConfigError) as info:
        cfg(fields)
    assert message in info.value.message
    assert info.value.loc is not None
    assert "Traceback" not in info.value.render()


def test_did_you_mean():
    with pytest.raises(ConfigError) as info:
        cfg({"domian": "x.com"})
    assert info.value.hint == "did you mean `domain`?"


@pytest.mark.parametrize(
    "env_block, message",
    [
        ({"9BAD": "x"}, "env name `9BAD` is not valid"),
        ({"BAD-NAME": "x"}, "env name `BAD-NAME` is not valid"),
        ({"OK": "a\nb"}, "newline or NUL"),
        ({"OK": "a\x00b"}, "newline or NUL"),
        ({"OK": expr('env("X")')}, "must be a literal"),
    ],
)
def test_env_rejected(env_block, message):
    with pytest.raises(ConfigError) as info:
        cfg(env=env_block)
    assert message in info.value.message


def test_env_values_kept_exactly():
    c = cfg(env={"A": "x y=z 'q' \"d\" #h $(rm) `b` %i", "B": 3, "C": True})
    assert c.env_vars == (("A", "x y=z 'q' \"d\" #h $(rm) `b` %i"), ("B", "3"), ("C", "true"))


def db(**engines):
    return Body((), tuple(SubBlock(k, LOC, body(v)) for k, v in engines.items()))


@pytest.mark.parametrize(
    "engines, message",
    [
        ({"mysql": {}}, "unknown database engine `mysql`"),
        ({"postgress": {}}, "unknown database engine"),
        ({"postgres": {"name": "my-db"}}, "not a plain identifier"),
        ({"postgres": {"name": "x; DROP"}}, "not a plain identifier"),
        ({"postgres": {"port": 0}}, "between 1 and 65535"),
        ({"postgres": {"port": 65536}}, "between 1 and 65535"),
        ({"postgres": {"owner": "x"}}, "unknown postgres setting"),
        ({"redis": {"maxmemory": "big"}}, "is not a size"),
        ({"sqlite": {"path": "../etc/passwd"}}, "relative path"),
        ({"sqlite": {"path": "/abs.db"}}, "relative path"),
    ],
)
def test_db_rejected(engines, message):
    with pytest.raises(ConfigError) as info:
        cfg(db=db(**engines))
    assert message in info.value.message


def test_db_overrides_parsed():
    c = cfg(db=db(postgres={"name": "myapp_prod", "port": 5433}, redis={"maxmemory": "256mb"}))
    got = {o.engine: o.settings for o in c.db_overrides}
    assert got == {"postgres": {"name": "myapp_prod", "port": 5433}, "redis": {"maxmemory": 256 * 1024**2}}


@pytest.mark.parametrize(
    "text, size",
    [("512mb", 512 * 1024**2), ("512MB", 512 * 1024**2), ("1g", 1024**3), ("1.5GB", int(1.5 * 1024**3)),
     ("64k", 65536), ("64Kb", 65536), (" 2 gb ", 2 * 1024**3)],
)
def test_memory_sizes(text, size):
    assert parse_memory(text, LOC, "memory") == size


@pytest.mark.parametrize("domain, stored", [
    ("MyApp.com", "myapp.com"), ("*.myapp.com", "*.myapp.com"), ("münchen.de", "xn--mnchen-3ya.de"),
    ("localhost", "localhost"), ("a-b.c-d.io", "a-b.c-d.io"),
])
def test_domains_accepted(domain, stored):
    assert cfg({"domain": domain}).domain == stored


@pytest.mark.parametrize("server", ["root@203.0.113.1", "deploy@host.example.com:2222", "myalias",
                                     "root@[2001:db8::1]:22", "host.example.com"])
def test_servers_accepted(server):
    assert cfg({"server": server}).server == server


@pytest.mark.parametrize("branch", ["main", "release/v2", "feature-x_1", "a.b"])
def test_branches_accepted(branch):
    assert cfg({"branch": branch}).branch == branch


def test_app_names():
    assert default_app_name("myapp", "prod") == "myapp"
    assert default_app_name("myapp", "production") == "myapp"
    assert default_app_name("myapp", "staging") == "myapp-staging"
    assert default_app_name("My_App", "Staging") == "my-app-staging"
    assert cfg(env_name="staging", app="shop").app == "shop"
    assert cfg(env_name="staging").app == "myapp-staging"


@pytest.mark.parametrize("app", ["My_App", "9lives", "a" * 41])
def test_invalid_explicit_app_name(app):
    with pytest.raises(ConfigError, match="not a valid app name"):
        cfg(app=app)


def test_underivable_app_name_hints_at_tova_toml():
    with pytest.raises(ConfigError) as info:
        cfg(project="42")
    assert "tova.toml" in info.value.hint and "[tova-deploy.apps]" in info.value.hint


def test_every_block_of_a_name_needs_server_and_domain():
    """The compiler checks each deploy block on its own (issue 9, point 3)."""
    blocks = [deploy("prod"), DeployBlock("prod", LOC, body({"instances": 4}))]
    with pytest.raises(ConfigError, match="missing `server`"):
        build_config(blocks, "prod", "myapp")


@pytest.mark.parametrize("key", ["PORT"])
def test_reserved_env_names_are_rejected_with_a_location(key):
    with pytest.raises(ConfigError) as info:
        cfg(env={key: 3000})
    assert "set by the server" in info.value.message and "instance" in info.value.message
    assert info.value.loc is not None


def test_node_env_production_stays_valid():
    assert dict(cfg(env={"NODE_ENV": "production"}).env_vars) == {"NODE_ENV": "production"}


def test_numeric_env_values_keep_their_spelling():
    from tova.errors import Location
    from tova.lang.program import Value

    loc = Location("src/app.tova", 2, 11)
    values = {"A": Value("float", 1000.0, "1e3", loc), "B": Value("int", 1000, "1_000", loc),
              "C": Value("float", 0.5, "0.50", loc), "D": Value("int", 31, "0x1F", loc)}
    assert dict(cfg(env=values).env_vars) == {"A": "1e3", "B": "1000", "C": "0.50", "D": "0x1F"}


def test_keyword_env_names_are_rejected():
    with pytest.raises(ConfigError, match="not valid"):
        cfg(env={"type": "x"})


def test_same_name_blocks_merge_later_wins_and_envs_stay_separate():
    blocks = [
        deploy("prod", {"instances": 2}, env={"A": "1"}),
        deploy("staging", {"domain": "staging.myapp.com", "instances": 3}),
        deploy("prod", {"instances": 4}, env={"B": "2"}),
    ]
    prod = build_config(blocks, "prod", "myapp")
    staging = build_config(blocks, "staging", "myapp")
    assert prod.instances == 4 and dict(prod.env_vars) == {"A": "1", "B": "2"}
    assert prod.domain == "myapp.com"
    assert staging.instances == 3 and staging.env_vars == () and staging.domain == "staging.myapp.com"


def test_unknown_env_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        build_config([deploy("prod"), deploy("staging")], "qa", "myapp")
    assert info.value.hint == "this project has: prod, staging"


def test_no_deploy_block():
    with pytest.raises(ConfigError) as info:
        build_config([], "prod", "myapp")
    assert "no deploy block" in info.value.message


def test_unknown_sub_block_and_field_as_block():
    with pytest.raises(ConfigError, match="unknown deploy property `envs`"):
        cfg(envs={"A": "1"})
    with pytest.raises(ConfigError, match="must be a block"):
        cfg({"env": "x"})
