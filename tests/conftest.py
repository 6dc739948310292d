"""Fixtures shared by the server-side tests."""

import os
import sys
from pathlib import Path

import pytest

# As ./run-tests does: the tests' own subprocesses (the fixture compiler's `#!/usr/bin/env
# python3`, the hooks' tools) run this environment's Python, not whatever `python3` comes
# first on PATH (a version manager's shim adds 0.1 s to every start).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture
def site(tmp_path):
    """A temp TOVA_ROOT with a bare repo and a client work tree (tests/release_harness.py);
    every app process it started is ended afterwards."""
    from release_harness import Site

    s = Site(tmp_path)
    yield s
    s.close()


def pytest_collection_modifyitems(items):
    """A test that deploys into a temp root (the `site` fixture: real pushes, builds and
    app processes, about a second each) is `slow`: outside the quick loop, its own stage
    in ./run-tests."""
    for item in items:
        if "site" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
