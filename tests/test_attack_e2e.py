"""Attack suite (issue 13) on the test server: a hostile push or a compromised app tries to
reach another app, the server's secrets or root, through real Bun, Caddy, Redis,
PostgreSQL and systemd. Each scenario failed before its fix; now the attack is refused.

One freshly reset server for the module; scenarios run in file order (alpha is the victim
app deployed first, evil the attacker)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_support  # noqa: E402
import testserver as ts  # noqa: E402
from e2e_support import SERVER_SETTINGS, SETUP_GIT, Project, World, configure_server  # noqa: E402

pytestmark = pytest.mark.e2e

e2e_support.skip_module_without_test_server()

# A compiler started through Bun, as the real one is: Bun reads the checkout's bunfig.toml.
BUN_COMPILER = "/opt/tova/fixture/bun-compiler.js"
BUN_COMPILER_JS = """\
const r = Bun.spawnSync(["/opt/tova/compiler/tova", ...process.argv.slice(2)],
  { stdout: "inherit", stderr: "inherit" });
process.exit(r.exitCode ?? 1);
"""


def app_source(name: str, extra: str = "", deploy: str = "") -> str:
    return f"""\
server {{
  fn handler() {{ text("ok") }}
  fn healthz() {{ text("ok") }}

  route GET "/x" => handler
  route GET "/healthz" => healthz
{extra}}}

deploy "prod" {{
  server: "tova-testserver"
  domain: "{name}.tova.test"
  memory: "256mb"
{deploy}}}
"""


def new_project(world: World, name: str, files: dict[str, str], extra: str = "", deploy: str = "") -> Project:
    d = world.tmp / name
    (d / "src").mkdir(parents=True)
    (d / "tova.toml").write_text(f'[project]\nname = "{name}"\nentry = "src"\n')
    (d / "src" / "app.tova").write_text(app_source(name, extra, deploy))
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    p = Project(d, world.env)
    p.git("init", "-q", "-b", "main")
    p.commit("first version")
    world.projects[name] = p
    return p


def setup_and_push(p: Project) -> subprocess.CompletedProcess:
    setup = p.tova("deploy", "prod", *SETUP_GIT)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    return p.push()


# The victim keeps data in PostgreSQL and Redis.
ALPHA_DBS = ('  db {\n    postgres { }\n    redis { maxmemory: "32mb" }\n  }\n'
             '  env {\n    API_TOKEN: "alpha-env-secret"\n  }\n')


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    config = ts.reset()
    configure_server(config)
    w = World(config, tmp_path_factory.mktemp("attack"))
    # The compiler is a Bun program: give the server the host's Bun (the pinned version,
    # so provisioning keeps it) before the first build.
    with open("/usr/bin/bun", "rb") as f:
        subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", ts.HOST,
                        "install -m 0755 /dev/stdin /usr/local/bin/bun"], stdin=f, check=True, timeout=300)
    alpha = new_project(w, "alpha", {}, deploy=ALPHA_DBS)
    push = setup_and_push(alpha)
    assert "Live at https://alpha.tova.test (v1)" in push.stderr, push.stdout + push.stderr
    # From now on the compiler starts through Bun (installed by alpha's provisioning).
    w.ok(f"mkdir -p {BUN_COMPILER.rsplit('/', 1)[0]} && cat > {BUN_COMPILER} <<'EOF'\n{BUN_COMPILER_JS}EOF")
    settings = SERVER_SETTINGS + f'compiler = "/usr/local/bin/bun {BUN_COMPILER}"\n'
    w.ok(f"cat > /opt/tova/config.toml <<'EOF'\n{settings}EOF")
    return w


EVIL_PRELOAD = """\
const fs = require("fs");
console.log("ATTACK preload uid=" + process.getuid());
const tries = {
  "write /etc": () => fs.writeFileSync("/etc/tova-pwned", "x"),
  "write /root": () => fs.writeFileSync("/root/tova-pwned", "x"),
  "write alpha's release": () => fs.writeFileSync("/opt/tova/apps/alpha/current/pwned", "x"),
  "read alpha's env": () => fs.readFileSync("/opt/tova/apps/alpha/.env.production"),
  "read alpha's repo": () => fs.readdirSync("/opt/tova/apps/alpha/repo.git"),
  "read the registry": () => fs.readFileSync("/opt/tova/registry.json"),
  "read the settings": () => fs.readFileSync("/opt/tova/config.toml"),
  "read Caddy's keys": () => fs.readdirSync("/var/lib/caddy/.local/share/caddy"),
};
for (const [what, f] of Object.entries(tries)) {
  try { f(); console.log("ATTACK " + what + ": done"); }
  catch (e) { console.log("ATTACK " + what + ": refused (" + e.code + ")"); }
}
"""


def test_1_pushed_bunfig_preload_does_not_run_as_root(world):
    evil = new_project(world, "evil", {"bunfig.toml": 'preload = ["./evil.js"]\n', "evil.js": EVIL_PRELOAD})
    push = setup_and_push(evil)
    out = push.stdout + push.stderr
    assert push.returncode == 0, out
    assert "ATTACK preload uid=" in out, out  # the preload really ran: the attack was tried
    assert "ATTACK preload uid=0" not in out, out
    assert ": done" not in out, out
    assert out.count(": refused") == 8, out
    world.ok("test ! -e /etc/tova-pwned && test ! -e /root/tova-pwned && test ! -e /opt/tova/apps/alpha/current/pwned")
    # Root took the output: the live release belongs to root, the app's group reads it.
    owners = world.ok("stat -c '%U:%G %a' /opt/tova/apps/evil/current/ /opt/tova/apps/evil/current/server.js")
    assert owners.split("\n")[:2] == ["root:tova-evil 751", "root:tova-evil 640"], owners


def test_2_public_symlink_out_of_the_release_is_refused(world):
    evil = world.projects["evil"]
    evil.run(["ln", "-s", "/", "public"])
    evil.commit("public -> /")
    # The pre-receive check refuses it too; the deploy itself must (tova-release deploy
    # runs without that check).
    world.ok("mv /opt/tova/apps/evil/repo.git/hooks/pre-receive /root/evil-pre-receive")
    push = evil.push()
    world.ok("mv /root/evil-pre-receive /opt/tova/apps/evil/repo.git/hooks/pre-receive")
    out = push.stdout + push.stderr
    assert "symlink public -> / points outside the project" in out, out
    assert world.ok("readlink /opt/tova/apps/evil/current").strip() == "releases/v1"
    status, body = world.web().get("evil.tova.test", "/etc/hostname")
    assert "tova-testserver" not in body, (status, body)
    evil.git("rm", "-q", "public")
    evil.commit("no public")


def test_3_redis_of_another_app_is_out_of_reach(world):
    evil = world.projects["evil"]
    src = evil.dir / "src" / "app.tova"
    src.write_text(app_source("evil", deploy='  db { redis { maxmemory: "16mb" } }\n'))
    evil.commit("redis")
    push = evil.push()
    assert "Live at https://evil.tova.test" in push.stderr, push.stderr
    alpha_sock, evil_sock = "/run/redis-tova-alpha/redis.sock", "/run/redis-tova-evil/redis.sock"
    world.ok(f"runuser -u tova-alpha -- redis-cli -s {alpha_sock} SET alpha:secret s3cret")
    # Everything evil's user can try: alpha's socket, any Redis on the loopback port.
    for cmd in (f"redis-cli -s {alpha_sock} GET alpha:secret", f"redis-cli -s {alpha_sock} FLUSHALL",
                f"redis-cli -s {alpha_sock} SCAN 0", "redis-cli -h 127.0.0.1 GET alpha:secret",
                "redis-cli -h 127.0.0.1 SCAN 0", "ls /run/redis-tova-alpha"):
        res = world.ssh(f"runuser -u tova-evil -- {cmd}")
        assert "s3cret" not in res.stdout and "alpha:" not in res.stdout, (cmd, res.stdout)
    assert world.ok(f"redis-cli -s {alpha_sock} GET alpha:secret").strip() == "s3cret"
    # evil reaches its own; each instance holds its own deploy block's maxmemory.
    world.ok(f"runuser -u tova-evil -- redis-cli -s {evil_sock} SET evil:k v")
    assert world.ok(f"redis-cli -s {alpha_sock} CONFIG GET maxmemory").split() == ["maxmemory", str(32 << 20)]
    assert world.ok(f"redis-cli -s {evil_sock} CONFIG GET maxmemory").split() == ["maxmemory", str(16 << 20)]
    assert world.ok(f"redis-cli -s {evil_sock} DBSIZE").strip() == "1"


def test_4_database_names_cannot_collide_or_be_reserved(world):
    evil = world.projects["evil"]
    src = evil.dir / "src" / "app.tova"
    for name, message in (("alpha_db", "already belongs to app 'alpha'"), ("postgres", "reserved by PostgreSQL")):
        src.write_text(app_source("evil", deploy=f'  db {{ postgres {{ name: "{name}" }} }}\n'))
        evil.commit(f"take {name}")
        push = evil.push()
        assert message in push.stderr, push.stderr
        assert "Live at" not in push.stderr
    # alpha still owns its database, and postgres still accepts connections.
    owner = world.ok("runuser -u postgres -- psql -XAtc \"SELECT pg_get_userbyid(datdba) FROM pg_database "
                     "WHERE datname = 'alpha_db'\"").strip()
    assert owner == "tova_alpha"
    assert world.ok("runuser -u postgres -- psql -XAtc \"SELECT has_database_privilege('public', 'postgres', "
                    "'CONNECT')\"").strip() == "t"


def test_5_another_apps_files_are_out_of_reach(world):
    """What evil's code (its user) can try against alpha's files and the server's state."""
    tries = {
        "alpha's repository": "ls /opt/tova/apps/alpha/repo.git",
        "alpha's app directory": "ls /opt/tova/apps/alpha",
        "alpha's code": "cat /opt/tova/apps/alpha/current/server.js",
        "alpha's release record": "cat /opt/tova/apps/alpha/current/.tova-manifest.json",
        "alpha's deploy env": "cat /opt/tova/apps/alpha/.env.deploy",
        "alpha's secrets": "cat /opt/tova/apps/alpha/.env.production",
        "alpha's history": "cat /opt/tova/apps/alpha/history.jsonl",
        "the registry": "cat /opt/tova/registry.json",
        "the settings": "cat /opt/tova/config.toml",
        "the apps": "ls /opt/tova/apps",
    }
    for what, cmd in tries.items():
        res = world.ssh(f"runuser -u tova-evil -- {cmd}")
        assert res.returncode != 0 and "Permission denied" in res.stderr, (what, res.stdout, res.stderr)
    # The env value is in no world-readable unit file; alpha itself still gets it.
    res = world.ssh("runuser -u tova-evil -- grep -r alpha-env-secret /etc/systemd/system")
    assert "alpha-env-secret" not in res.stdout, res.stdout
    world.ok("runuser -u tova-alpha -- cat /opt/tova/apps/alpha/current/server.js >/dev/null")
    port = world.release_json("status", "alpha")["ports"][0]
    pid = world.ok(f"systemctl show -p MainPID --value tova-alpha@{port}.service").strip()
    assert "API_TOKEN=alpha-env-secret" in world.ok(f"tr '\\0' '\\n' </proc/{pid}/environ")


def test_6_provisioning_does_not_follow_a_link_the_app_planted_in_data(world):
    """The SQLite step makes the database's directory under data/; the app (its user) had
    put a symlink there to a directory of root's: chown/chmod must not reach it."""
    evil = world.projects["evil"]
    world.ok("install -d -o root -g root -m 0755 /opt/victim")
    world.ok("runuser -u tova-evil -- ln -s /opt/victim /opt/tova/apps/evil/data/db")
    src = evil.dir / "src" / "app.tova"
    src.write_text(app_source("evil", deploy='  db { sqlite { path: "db/evil.db" } }\n'))
    evil.commit("sqlite under data/db")
    push = evil.push()
    assert "Live at https://evil.tova.test" in push.stderr, push.stdout + push.stderr
    assert world.ok("stat -c '%U:%G %a' /opt/victim").strip() == "root:root 755"


EVIL_DEPS_PRELOAD = """\
const fs = require("fs");
const mods = fs.realpathSync("node_modules");
console.log("DEPS ms " + require(mods + "/ms/package.json").version);
const tries = {
  "change its dependency": () => fs.writeFileSync("node_modules/ms/index.js", "pwned"),
  "add to its dependencies": () => fs.writeFileSync("node_modules/pwned.js", "x"),
  "read its sealed set": () => fs.readdirSync(mods.replace(/\\.build\\/node_modules$/, "")),
  "read alpha's app directory": () => fs.readdirSync("/opt/tova/apps/alpha"),
};
for (const [what, f] of Object.entries(tries)) {
  try { f(); console.log("DEPS " + what + ": done"); }
  catch (e) { console.log("DEPS " + what + ": refused (" + e.code + ")"); }
}
"""


def test_6b_the_build_reads_its_dependencies_and_cannot_change_them(world):
    """Dependencies are installed before the build and shown to it read-only: pushed code
    running in the build reads its own node_modules, and cannot change the installed set,
    reach the release's copy of it or another app's directory."""
    evil = world.projects["evil"]
    (evil.dir / "evil.js").write_text(EVIL_DEPS_PRELOAD)
    (evil.dir / "tova.toml").write_text('[project]\nname = "evil"\nentry = "src"\n\n[npm]\nms = "2.1.3"\n')
    evil.commit("npm dependency")
    push = evil.push()
    out = push.stdout + push.stderr
    assert "Live at https://evil.tova.test" in out and "DEPS ms 2.1.3" in out, out
    assert ": done" not in out and out.count(": refused") == 4, out
    world.ok("! grep -rl pwned /opt/tova/apps/evil/deps")


def test_7_removing_an_app_with_redis_leaves_other_apps_keys(world):
    """Key names with whitespace or another app's prefix, in the removed app's Redis."""
    evil_sock = "/run/redis-tova-evil/redis.sock"
    evil = world.projects["evil"]
    (evil.dir / "src" / "app.tova").write_text(app_source("evil", deploy='  db { redis { } }\n'))
    evil.commit("redis again")
    assert "Live at https://evil.tova.test" in evil.push().stderr
    alpha_sock = "/run/redis-tova-alpha/redis.sock"
    world.ok(f"redis-cli -s {alpha_sock} SET alpha:secret s3cret")
    before = world.ok(f"redis-cli -s {alpha_sock} DBSIZE").strip()
    for key in ("alpha:secret", "evil:x alpha:secret", "evil:* *", "evil:\nalpha:secret"):
        world.ok(f"runuser -u tova-evil -- redis-cli -s {evil_sock} SET {shlex.quote(key)} v")
    world.ok("tova-release remove evil --yes")
    assert world.ok(f"redis-cli -s {alpha_sock} GET alpha:secret").strip() == "s3cret"
    assert world.ok(f"redis-cli -s {alpha_sock} DBSIZE").strip() == before
    assert world.ssh(f"test -S {evil_sock}").returncode != 0  # evil's instance is gone, its data archived
