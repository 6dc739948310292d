"""--plan's capacity figures: memory limits against the server's RAM, first provisioning."""

from dataclasses import replace

from tova.capacity import COMPONENTS, first_provisioning, memory_commit
from tova.manifest import Database, Manifest

MB = 1024 * 1024


def manifest(**over) -> Manifest:
    m = Manifest(project="p", app="shop", env="prod", server="s", domain="shop.example.com",
                 memory_bytes=256 * MB, instances=2)
    return replace(m, **over)


def test_over_commit_is_warned_with_the_figures():
    apps = [{"app": "a", "memory_limit_bytes": 1024 * MB}, {"app": "b", "memory_limit_bytes": 512 * MB},
            {"app": "shop", "memory_limit_bytes": 128 * MB},  # its old limit: replaced by the manifest's
            {"app": "old-toolkit"}]  # no figure from an older server toolkit
    commit = memory_commit(manifest(), apps, 2048 * MB)
    assert (commit.committed, commit.this_app) == (2048 * MB, 512 * MB)
    assert not commit.over and commit.warning() is None  # exactly full is not over
    commit = memory_commit(manifest(instances=3), apps, 2048 * MB)
    assert commit.over
    assert commit.warning() == (
        "⚠ Memory over-committed: the apps' memory limits add up to 2.2 GB (this app 768 MB) on a "
        "server with 2 GB of RAM; lower `memory` or `instances`, or use a larger server")
    assert memory_commit(manifest(), apps, None).warning() is None  # RAM unknown: no claim


def test_first_provisioning_counts_only_what_is_missing():
    plain = first_provisioning(manifest(), frozenset())
    assert [p.label for p in plain.parts] == [COMPONENTS["caddy"].label, COMPONENTS["bun"].label]
    assert plain.disk_bytes > 100 * MB and plain.seconds > 10
    line = plain.line()
    assert line and line.startswith("First provisioning of this server: about ") and "of disk and" in line
    pg = first_provisioning(manifest(databases=(Database("postgres", name="db"), Database("redis"))), frozenset())
    assert pg.disk_bytes > plain.disk_bytes and len(pg.parts) == 4
    done = first_provisioning(manifest(), frozenset({"caddy", "bun"}))
    assert done.parts == () and done.line() is None
