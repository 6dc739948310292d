"""Issue 9 points 6, 8 and 10: hostile or odd input gets a result or a located error,
never a hidden block, a crash, or a wrong line in the error snippet. (Times are figures
of benchmarks/bench_frontend.py, not asserted here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tova.errors import TovaError, TovaSyntaxError
from tova.lang.reader import parse_source
from tova.loader import load_manifest

SERVER = 'server {\n  db { driver: "postgres" }\n  ws { on_open fn(s) { s.send("x") } }\n}\n'
DEPLOY = 'deploy "prod" { server: "s" domain: "d.com" }\n'


@pytest.mark.parametrize("invisible", ["\u200b", "\ufeff", "\x00", "\u2060", "\u00a0", "\x0b"])
def test_an_invisible_character_never_hides_the_next_block(invisible):
    """The server block used to vanish from the plan, exit 0 (point 6)."""
    with pytest.raises(TovaSyntaxError, match="unexpected character") as info:
        parse_source("x = 1" + invisible + "\n" + SERVER + DEPLOY, "app.tova")
    assert (info.value.loc.line, info.value.loc.col) == (1, 6)


def test_a_leading_bom_is_rejected_like_the_compiler_does():
    with pytest.raises(TovaSyntaxError, match="U\\+FEFF"):
        parse_source("\ufeff" + SERVER, "app.tova")


N = 200_000  # big enough that quadratic time or recursion would show


@pytest.mark.parametrize("text, blocks", [
    ("x = 1 " + "concurrent " * N + "\n" + DEPLOY, ["deploy"]),
    ("server {\n" + 'routes "/a" ' * N + "\n}\n" + DEPLOY, ["server", "deploy"]),
    ("data {\n" + "source x " * N + "\n}\n" + DEPLOY, ["data", "deploy"]),
    ("browser {\n component A() {\n" + "<a>" * N + "</a>" * N + "\n }\n}\n" + DEPLOY, ["browser", "deploy"]),
    ('x = "' + "a{b}" * N + '"\n' + DEPLOY, ["deploy"]),
])
def test_pathological_inputs_read_in_one_pass(text, blocks):
    assert [b.kind for b in parse_source(text, "p.tova").blocks] == blocks


@pytest.mark.parametrize("text", [
    'deploy "p" { server: ' + "[" * 490 + "]" * 490 + " }\n",  # used to be a RecursionError
    "x = " + "<a>{" * 5000 + "}</a>" * 5000,
    "fn f() " + "{" * 50_000 + "}" * 50_000,
    "/*" * N,
])
def test_deep_or_unclosed_input_is_a_located_error(text):
    with pytest.raises(TovaSyntaxError) as info:
        parse_source(text, "p.tova")
    assert info.value.loc is not None and info.value.hint


def test_arrays_in_a_deploy_value_are_an_error_not_a_crash():
    with pytest.raises(TovaError) as info:
        parse_source('deploy "p" { server: ' + "[" * 40 + "]" * 40 + " }\n", "p.tova")
    assert info.value.loc is not None


@pytest.mark.parametrize("odd", ["\u2028", "\x0c", "\u2029", "\x85"])
def test_error_snippet_shows_the_right_line(tmp_path: Path, odd):
    """Only \\n ends a line for the compiler; a U+2028 or form feed inside a string
    must not shift the line the error shows (point 10)."""
    (tmp_path / "src").mkdir()
    src = f'note = "a{odd}b"\nx = 1\ndeploy "prod" {{\n  server: "s"\n  domain: "d.com"\n  nope: 1\n}}\nserver {{ }}\n'
    (tmp_path / "src" / "app.tova").write_text(src, encoding="utf-8")
    with pytest.raises(TovaError) as info:
        load_manifest(tmp_path, "prod")
    assert info.value.loc.line == 6
    assert info.value.source_line == "  nope: 1"


def test_a_test_block_with_a_timeout_is_a_test_block():
    """`test "name" timeout=5000 { }` (point 10): the compiler's test block syntax."""
    parsed = parse_source('test "slow" timeout=5000 {\n  assert(true)\n}\n' + DEPLOY, "t.tova")
    assert [(b.kind, b.name, b.loc.line) for b in parsed.blocks] == [("test", "slow", 1), ("deploy", "prod", 4)]
    with pytest.raises(TovaSyntaxError, match="timeout="):
        parse_source('test "slow" timeout=soon { }', "t.tova")
