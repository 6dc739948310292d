"""The manifest's canonical JSON, hash and per-layer diff."""

from dataclasses import replace

from tova.manifest import LAYERS, Database, Manifest, Proxy, Secrets, changed_layers


def base() -> Manifest:
    return Manifest(env="prod", app="myapp", project="myapp", server="root@h", domain="myapp.com",
                    system=("bun", "caddy", "ufw"))


def test_round_trip_and_stable_hash():
    m = replace(base(), databases=(Database("postgres", name="x_db", port=5432), Database("sqlite", paths=("a.db",))),
                proxy=Proxy(websocket=True, sse_paths=("/e",), cors_origins=("https://a.com",)),
                secrets=Secrets(("JWT_SECRET",), ("DATABASE_URL",)), env_vars=(("A", "1"),), data_files=("d.csv",))
    again = Manifest.from_json(m.to_json())
    assert again == m and again.infra_hash() == m.infra_hash()
    assert m.to_json() == again.to_json()


def test_first_deploy_runs_every_layer():
    assert changed_layers(None, base()) == list(LAYERS)


def test_code_only_change_runs_nothing():
    assert changed_layers(base(), replace(base(), branch="main", keep_releases=9, data_files=("x",))) == []


def test_adding_redis_changes_databases_and_dependants_only():
    new = replace(base(), databases=(Database("redis"),), system=base().system + ("redis",),
                  secrets=Secrets((), ("REDIS_URL",)))
    # The Redis server is installed by the databases layer, so system does not rerun.
    assert changed_layers(base(), new) == ["databases", "secrets", "services"]


def test_port_change_reruns_proxy_and_services():
    assert changed_layers(base(), base(), [3000], [3001]) == ["proxy", "services"]


def test_env_vars_only_touch_services():
    assert changed_layers(base(), replace(base(), env_vars=(("A", "2"),))) == ["services"]


def test_hash_never_covers_secret_values():
    # Only secret names are inputs; there is no field for a value at all.
    assert "value" not in base().to_json().lower()
