"""The manifest the pre-receive check read is kept for the deploy that follows (taken once,
root's only); the deploy reads the project itself whenever it is not there or not usable."""

from __future__ import annotations

import json
from pathlib import Path

import tova
from tova.layout import Layout
from tova.loader import load_manifest
from tova.server import prechecked

COMMIT = "3f2a1c9" + "0" * 33
FIXTURE = Path(__file__).parent / "fixtures" / "e2e-apps" / "notes"


def _app(tmp_path):
    app = Layout.of(tmp_path).app("notes")
    app.dir.mkdir(parents=True)
    return app


def test_kept_once_for_its_commit_and_environment(tmp_path):
    app = _app(tmp_path)
    manifest = load_manifest(FIXTURE, "prod", project_relative=True)
    prechecked.keep(app, COMMIT, "prod", manifest)
    assert (app.dir / prechecked.DIR_NAME).stat().st_mode & 0o777 == 0o700
    assert prechecked.take(app, COMMIT, "staging") is None
    assert prechecked.take(app, "1" * 40, "prod") is None
    assert prechecked.take(app, COMMIT, "prod") == manifest
    assert prechecked.take(app, COMMIT, "prod") is None  # taken: the next deploy of it reads the project
    assert list((app.dir / prechecked.DIR_NAME).iterdir()) == []


def test_what_is_unusable_is_ignored(tmp_path):
    app = _app(tmp_path)
    manifest = load_manifest(FIXTURE, "prod", project_relative=True)
    for text in ("{not json", json.dumps({"toolkit": "0.0.0-other", "manifest": manifest.to_dict()}),
                 json.dumps({"toolkit": tova.__version__, "manifest": {"app": 1}}), "[]"):
        prechecked.keep(app, COMMIT, "prod", manifest)
        (app.dir / prechecked.DIR_NAME / f"{COMMIT}.prod.json").write_text(text)
        assert prechecked.take(app, COMMIT, "prod") is None, text
    # names that could leave the directory are never used
    prechecked.keep(app, "../../x", "prod", manifest)
    prechecked.keep(app, COMMIT, "../x", manifest)
    assert list((app.dir / prechecked.DIR_NAME).iterdir()) == []
