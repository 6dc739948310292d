"""The app's identity (issue 9, points 3 and 4): decided on the developer's machine from
tova.toml, else the project folder's name; recorded on the server; never derived there
from a folder of the server's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tova.errors import ConfigError, TovaError
from tova.loader import load_manifest

DEPLOY = 'deploy "{env}" {{ server: "root@203.0.113.1" domain: "{env}.shop.com" }}\nserver {{ }}\n'


def project(root: Path, toml: str | None = None, envs: tuple[str, ...] = ("prod", "staging")) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.tova").write_text("".join(DEPLOY.format(env=e) for e in envs))
    if toml is not None:
        (root / "tova.toml").write_text(toml)
    return root


def test_without_tova_toml_the_folder_names_the_app(tmp_path):
    root = project(tmp_path / "shop")
    assert load_manifest(root, "prod").app == "shop"
    assert load_manifest(root, "staging").app == "shop-staging"


def test_server_checkout_uses_the_recorded_name_not_its_folder(tmp_path):
    """The server checks out into a folder named `src`: without tova.toml the recorded
    name wins (this push used to be refused: "deploys app 'shop' but ... is for 'src'")."""
    checkout = project(tmp_path / "deploy-x" / "src")
    assert load_manifest(checkout, "prod", recorded_app="shop").app == "shop"
    assert load_manifest(checkout, "staging", recorded_app="shop-staging").app == "shop-staging"


def test_server_refuses_a_tova_toml_naming_another_app(tmp_path):
    checkout = project(tmp_path / "src", '[project]\nname = "blog"\n')
    assert load_manifest(checkout, "prod", recorded_app="blog").app == "blog"
    with pytest.raises(ConfigError, match="deploys app 'shop'"):
        load_manifest(checkout, "prod", recorded_app="shop")


def test_tova_deploy_section_overrides_the_name(tmp_path):
    toml = '[project]\nname = "x"\n\n[tova-deploy]\nname = "shop"\n\n[tova-deploy.apps]\nstaging = "shop-preview"\n'
    root = project(tmp_path / "p", toml)
    assert load_manifest(root, "prod").app == "shop"
    assert load_manifest(root, "staging").app == "shop-preview"
    assert load_manifest(root, "staging", recorded_app="shop-preview").app == "shop-preview"


@pytest.mark.parametrize("toml, message", [
    ('[tova-deploy]\nname = 3\n', "must be a string"),
    ('[tova-deploy.apps]\nprod = ["a"]\n', "must be a string"),
    ("tova-deploy = 1\n", "must be a table"),
])
def test_bad_tova_deploy_section(tmp_path, toml, message):
    root = project(tmp_path / "p", toml)
    with pytest.raises(TovaError, match=message):
        load_manifest(root, "prod")


def test_invalid_override_is_a_config_error(tmp_path):
    root = project(tmp_path / "p", '[tova-deploy.apps]\nprod = "Bad_Name"\n')
    with pytest.raises(ConfigError, match="not a valid app name"):
        load_manifest(root, "prod")


def test_name_in_a_deploy_block_points_to_tova_toml(tmp_path):
    root = project(tmp_path / "p", envs=())
    (root / "src" / "app.tova").write_text('deploy "prod" {\n  server: "s"\n  domain: "d.com"\n  name: "shop"\n}\n'
                                           "server { }\n")
    with pytest.raises(ConfigError) as info:
        load_manifest(root, "prod")
    assert str(info.value.loc).endswith("app.tova:4:3")
    assert "[tova-deploy.apps]" in info.value.hint and 'prod = "shop"' in info.value.hint
