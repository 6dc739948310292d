"""Release numbering, failed markers and pruning."""

from __future__ import annotations

from tova.layout import Layout
from tova.server import releases
from tova.server.atomic import flip_symlink


def _make(app, n, failed=False):
    v = releases.next_version(app)
    staged = releases.staging_dir(app, v)
    staged.mkdir()
    (staged / "server.js").write_text(f"// {n}")
    path = releases.publish(app, staged, v)
    if failed:
        releases.mark_failed(path, "test")
    return v


def test_numbers_are_never_reused(tmp_path):
    app = Layout.of(tmp_path).app("a")
    assert [_make(app, i) for i in range(3)] == ["v1", "v2", "v3"]
    releases.prune(app, keep=1, current="v3")
    assert [r.version for r in releases.listing(app)] == ["v2", "v3"]
    assert _make(app, 4) == "v4"
    # even with the counter gone, existing dirs keep numbers moving up
    app.release_counter.unlink()
    assert _make(app, 5) == "v5"


def test_prune_keeps_successful_newest_failed_current_and_previous(tmp_path):
    app = Layout.of(tmp_path).app("a")
    for i in range(1, 9):
        _make(app, i, failed=i in (5, 7, 8))
    # v6 is current; the one before it that succeeded is v4
    flip_symlink(app.current, "releases/v6")
    (app.releases / "notes").mkdir()          # not a release name: never touched
    (app.releases / "v9-old").mkdir()
    removed = releases.prune(app, keep=1, current="v6")
    assert sorted(removed) == ["v1", "v2", "v3", "v5", "v7"]
    left = {p.name for p in app.releases.iterdir()}
    assert left == {"v4", "v6", "v8", "notes", "v9-old"}


def test_previous_good_skips_failed(tmp_path):
    app = Layout.of(tmp_path).app("a")
    for i in range(1, 5):
        _make(app, i, failed=i == 3)
    assert releases.previous_good(app, "v4").version == "v2"
    assert releases.previous_good(app, "v1") is None


def test_leftovers_are_cleaned(tmp_path):
    app = Layout.of(tmp_path).app("a")
    v = releases.next_version(app)
    releases.staging_dir(app, v).mkdir()
    (app.build_dir / "deploy-x").mkdir(parents=True)
    releases.clean_leftovers(app)
    assert list(app.releases.iterdir()) == []
    assert not app.build_dir.exists()
    assert releases.next_version(app) == "v2"
