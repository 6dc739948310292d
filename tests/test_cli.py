"""The `tova` command end to end, through a subprocess, on the bundled examples."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def tova(*args, cwd=REPO, env=None):
    full_env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    full_env.pop("TOVA_COMPILER", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "tova.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=60)


def plan_json(project, env="prod"):
    r = tova("deploy", env, "--plan", "--json", "--local", "--project", str(EXAMPLES / project))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_minimal_plan_screen():
    r = tova("deploy", "prod", "--plan", "--local", "--project", str(EXAMPLES / "minimal"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert 'Deploy plan for "prod" → root@203.0.113.10' in out
    assert "System:    Bun" in out and "Caddy 2" in out and "UFW" in out
    assert "Database:  none" in out
    assert "App:       minimal: 1 instance on port 3000" in out
    assert "Domain:    minimal.example.com (auto-SSL: tls = \"auto\", the default, unless" in out
    assert "Server not contacted" in out


def test_fullstack_plan_json_has_every_key():
    d = plan_json("fullstack")
    for key in ("env", "app", "server", "domain", "instances", "memory_bytes", "branch", "health",
                "restart_on_failure", "keep_releases", "env_vars", "databases", "system", "proxy",
                "secrets", "data_files", "infra_hash"):
        assert key in d, key
    assert d["app"] == "shop" and d["instances"] == 2 and d["memory_bytes"] == 1024**3
    assert d["health"] == {"path": "/healthz", "interval": 30, "timeout": 5, "fallback": False}
    assert d["system"] == ["bun", "caddy", "ufw", "postgresql", "redis"]
    assert d["databases"] == [
        {"engine": "postgres", "name": "shop_prod", "port": 5432},
        {"engine": "redis", "maxmemory_bytes": 256 * 1024**2},
    ]
    assert d["proxy"]["websocket"] and d["proxy"]["sse"] and d["proxy"]["static"]
    assert d["proxy"]["sse_paths"] == ["/api/v1/events"]
    assert d["proxy"]["cors_origins"] == ["https://shop.example.com", "https://admin.example.com"]
    assert d["secrets"] == {"required": ["JWT_SECRET", "API_KEYS"], "auto": ["DATABASE_URL", "REDIS_URL"]}
    assert d["data_files"] == ["data/products.csv"]
    assert d["env_vars"] == {"NODE_ENV": "production", "SHOP_TITLE": "Tea & Coffee"}
    assert d["ports"] == [3000, 3001]
    assert len(d["infra_hash"]) == 64


def test_fullstack_plan_never_prints_secret_values_and_lists_secrets():
    r = tova("deploy", "prod", "--plan", "--local", "--project", str(EXAMPLES / "fullstack"))
    assert r.returncode == 0, r.stderr
    assert "JWT_SECRET (required)" in r.stdout and "DATABASE_URL (auto)" in r.stdout
    assert "WebSocket" in r.stdout and "SSE /api/v1/events" in r.stdout


def test_two_environments_stay_separate():
    prod, staging = plan_json("two-envs", "prod"), plan_json("two-envs", "staging")
    assert (prod["app"], prod["branch"], prod["instances"], prod["env_vars"]) == ("blog", "main", 2, {})
    assert (staging["app"], staging["branch"], staging["instances"]) == ("blog-staging", "develop", 1)
    assert staging["env_vars"] == {"LOG_LEVEL": "debug"} and staging["keep_releases"] == 3
    assert prod["infra_hash"] != staging["infra_hash"]
    assert prod["databases"] == [{"engine": "sqlite", "paths": ["blog.db"]}]


def test_unknown_env_lists_known_ones():
    r = tova("deploy", "qa", "--plan", "--project", str(EXAMPLES / "two-envs"))
    assert r.returncode == 2
    assert 'no deploy block named "qa"' in r.stderr and "this project has: prod, staging" in r.stderr
    assert "Traceback" not in r.stderr


def test_tova_error_points_at_source(tmp_path):
    (tmp_path / "app.tova").write_text(
        'server { route GET "/" => "x" }\n\n'
        'deploy "prod" {\n  server: "root@h"\n  domain: "x.com"\n  instances: 99\n}\n'
    )
    r = tova("deploy", "prod", "--plan", "--local", "--project", str(tmp_path))
    assert r.returncode == 2
    first = r.stderr.splitlines()[0]
    assert first == f"{tmp_path / 'app.tova'}:6:14: instances must be between 1 and 32, not 99" or \
        first.endswith("app.tova:6:14: instances must be between 1 and 32, not 99"), r.stderr
    assert "  instances: 99" in r.stderr and "^" in r.stderr
    assert "Traceback" not in r.stderr


def test_syntax_error_is_located(tmp_path):
    (tmp_path / "app.tova").write_text('server { }\ndeploy "prod" {\n  server: "root@h",\n  domain: "x.com"\n}\n')
    r = tova("deploy", "prod", "--plan", "--local", "--project", str(tmp_path))
    assert r.returncode == 2 and "app.tova:3:" in r.stderr and "Traceback" not in r.stderr


def test_render_writes_every_file(tmp_path):
    out = tmp_path / "out"
    r = tova("deploy", "prod", "--render", str(out), "--project", str(EXAMPLES / "fullstack"))
    assert r.returncode == 0, r.stderr
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"provision.sh", "caddy/Caddyfile", "caddy/apps/shop.caddy", "systemd/tova-shop@.service",
            "systemd/tova-health.service", ".tova-manifest.json"} <= names
    assert os.access(out / "provision.sh", os.X_OK)


def test_render_into_a_place_it_cannot_write_is_a_cause_and_a_remedy(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = tova("deploy", "prod", "--render", str(blocker / "out"), "--project", str(EXAMPLES / "minimal"))
    assert r.returncode == 2 and "error: cannot write" in r.stderr and "hint: --render takes" in r.stderr
    assert "internal error" not in r.stderr


def test_render_takes_ports_from_registry(tmp_path):
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"apps": {"other": {"ports": [3000, 3001, 3002]}, "shop": {"ports": [3005, 3006]}},
                               "next_port": 3007}))
    r = tova("deploy", "prod", "--plan", "--json", "--local", "--registry", str(reg),
             "--project", str(EXAMPLES / "fullstack"))
    assert json.loads(r.stdout)["ports"] == [3005, 3006]
    reg.write_text(json.dumps({"apps": {"other": {"ports": [3000, 3001, 3002]}}, "next_port": 3003}))
    r = tova("deploy", "prod", "--plan", "--json", "--local", "--registry", str(reg),
             "--project", str(EXAMPLES / "fullstack"))
    assert json.loads(r.stdout)["ports"] == [3003, 3004]


def test_other_subcommands_go_to_the_compiler(tmp_path):
    fake = tmp_path / "compiler"
    fake.write_text("#!/bin/sh\necho \"compiler got: $*\"\n")
    fake.chmod(0o755)
    r = tova("build", "src", "--production", env={"TOVA_COMPILER": str(fake)})
    assert r.returncode == 0 and r.stdout.strip() == "compiler got: build src --production"


def test_without_a_compiler_one_line_explains(tmp_path):
    r = tova("build", "src", env={"PATH": str(tmp_path)})
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "deploy toolkit" in r.stderr


def test_never_hands_over_to_itself(tmp_path):
    me = tmp_path / "tova"
    me.write_text(f"#!{sys.executable}\nimport sys\nfrom tova.cli import main\nsys.exit(main())\n")
    me.chmod(0o755)
    r = tova("build", env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert r.returncode == 2 and "deploy toolkit" in r.stderr


def test_help_has_examples():
    r = tova("deploy", "--help")
    assert r.returncode == 0 and "tova deploy prod --plan" in r.stdout
    r = tova("env", "--help")
    assert r.returncode == 0 and "tova env prod set" in r.stdout


def test_missing_project_dir_is_clear(tmp_path):
    r = tova("deploy", "prod", "--plan", "--project", str(tmp_path / "nope"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "hint:" in r.stderr


def test_a_bug_of_ours_is_one_line_not_a_traceback(monkeypatch, capsys):
    from tova import cli

    def boom(args):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cli, "run_deploy", boom)
    monkeypatch.delenv("TOVA_DEBUG", raising=False)
    assert cli.main(["deploy", "prod", "--plan"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: internal error: RuntimeError: kaboom"
    assert "TOVA_DEBUG=1" in err and "Traceback" not in err


def test_a_flag_of_another_action_is_an_error():
    r = tova("deploy", "prod", "--plan", "--to", "v3", "--follow", "--project", str(EXAMPLES / "minimal"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == ["error: --to does not go with --plan", "hint: --to is for --rollback"]
    assert r.stdout == ""


def test_every_modifier_names_the_actions_it_goes_with():
    from tova import cli

    parser = cli.build_parser()
    for name, goes_with in cli.MODIFIERS.items():
        for action in (*cli.ACTIONS, "deploy"):
            argv = ["deploy", "prod"] + ([f"--{action.replace('_', '-')}"] if action != "deploy" else [])
            if action == "render":
                argv.append("--render=out")
                argv.remove("--render")
            argv.append(f"--{name}" if name in ("json", "local", "follow", "yes", "offline") else f"--{name}=1")
            args = parser.parse_args(argv)
            assert cli.deploy_action(args) == action
            try:
                cli.check_modifiers(args, action)
                accepted = True
            except cli.TovaError:
                accepted = False
            assert accepted == (action in goes_with), (name, action)


def test_plan_lists_what_caddy_serves_of_the_project(tmp_path):
    project = tmp_path / "site"
    (project / "src").mkdir(parents=True)
    (project / "public").mkdir()
    (project / "public" / "robots.txt").write_text("User-agent: *\n")
    (project / "src" / "app.tova").write_text(
        'server {\n  fn healthz() { text("ok") }\n  route GET "/healthz" => healthz\n}\n'
        'deploy "prod" {\n  server: "root@203.0.113.10"\n  domain: "site.example.com"\n}\n')
    r = tova("deploy", "prod", "--plan", "--local", "--project", str(project))
    assert r.returncode == 0, r.stderr
    assert "Static: public/, 1 file: /robots.txt" in r.stdout and "browser build" not in r.stdout
    d = json.loads(tova("deploy", "prod", "--plan", "--local", "--json", "--project", str(project)).stdout)
    assert d["static"] == {"browser": False, "public": ["robots.txt"], "base": "/"}
