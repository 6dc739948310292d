"""Fixtures shared by the server-side tests."""

import pytest


@pytest.fixture
def site(tmp_path):
    """A temp TOVA_ROOT with a bare repo and a client work tree (tests/release_harness.py);
    every app process it started is ended afterwards."""
    from release_harness import Site

    s = Site(tmp_path)
    yield s
    s.close()
