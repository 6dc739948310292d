"""Properties: the reader never crashes or hangs on any input (only TovaSyntaxError is
allowed), and a generated deploy block reads back to exactly its fields."""

from __future__ import annotations

import importlib.util
import keyword
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tova.errors import TovaSyntaxError
from tova.lang import reader
from tova.lang.lexer import NON_VALUE_WORDS
from tova.lang.reader import parse_source


def _fullstack() -> str:
    """The full-stack fixture of test_lang_reader.py, whatever pytest's import mode."""
    path = Path(__file__).with_name("test_lang_reader.py")
    spec = importlib.util.spec_from_file_location("_tova_reader_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FULLSTACK


FULLSTACK = _fullstack()

# A deadline is only a hang detector here, far above any real parse time.
SETTINGS = settings(max_examples=300, deadline=5000, suppress_health_check=list(HealthCheck))

TOVA_CHARS = st.sampled_from(list("{}()[]\"'/\\*<>=:;,.#!rf \n\tadeplosvyb_0123456789$`@-"))
TOVA_WORDS = st.sampled_from([
    "deploy ", "server ", "browser ", "security ", "data ", "auth ", "routes ", "db ", "ws ",
    "sse ", "source ", "read(", "env(", "style ", "fn ", "if ", "return ", "<div>", "</div>",
    "<p>", "</p>", '"""', "r\"", "f\"", "/*", "*/", "//", "\\{", ": ", "\n", "cors ",
    "concurrent ", "routes \"/a\" ", "'", '"', "{", "}", "match ", "for x in y ",
])


def parse_or_syntax_error(text: str) -> None:
    try:
        parse_source(text, "fuzz.tova")
    except TovaSyntaxError as e:
        assert e.loc is not None or e.message  # a real, located error
        assert e.hint is not None or e.loc is None


@SETTINGS
@given(st.text())
def test_arbitrary_unicode_text(text: str) -> None:
    parse_or_syntax_error(text)


@SETTINGS
@given(st.lists(st.one_of(TOVA_CHARS, TOVA_WORDS), max_size=80).map("".join))
def test_tova_flavoured_text(text: str) -> None:
    parse_or_syntax_error(text)


@st.composite
def mutated_program(draw) -> str:
    text = FULLSTACK
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 40)))
        op = draw(st.sampled_from(["delete", "insert", "duplicate"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.one_of(TOVA_CHARS, TOVA_WORDS)) + text[i:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


@SETTINGS
@given(mutated_program())
def test_mutated_valid_program(text: str) -> None:
    parse_or_syntax_error(text)


# -- round trip of a generated deploy block ---------------------------------------------

RESERVED = NON_VALUE_WORDS | {"true", "false", "nil", "fn", "not", "await"} | set(keyword.kwlist)
KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True).filter(lambda k: k not in RESERVED)
SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


def quote(value: str, style: str) -> str:
    if style == "double":
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("{", "\\{").replace("}", "\\}")
        return f'"{escaped}"'
    if style == "single":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return 'r"' + value + '"'  # raw: only used for values without " (see below)


@st.composite
def deploy_value(draw) -> tuple[str, object]:
    kind = draw(st.sampled_from(["string", "int", "bool"]))
    if kind == "int":
        n = draw(st.integers(0, 10**9))
        return (f"{n:_}" if draw(st.booleans()) else str(n)), n
    if kind == "bool":
        b = draw(st.booleans())
        return ("true" if b else "false"), b
    s = draw(SAFE_TEXT)
    style = draw(st.sampled_from(["double", "single", "raw"]))
    if style == "raw" and '"' in s:
        style = "double"
    return quote(s, style), s


SEPARATORS = st.sampled_from(["\n", " ", "; ", "\n\n  ", " /* c { } */ ", " // c }\n", "\t;\n"])


@st.composite
def deploy_block(draw) -> tuple[str, str, dict[str, object]]:
    name = draw(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True))
    keys = draw(st.lists(KEYS, min_size=1, max_size=8, unique=True))
    expected: dict[str, object] = {}
    parts = []
    for key in keys:
        text, value = draw(deploy_value())
        expected[key] = value
        parts.append(f"{key}:{draw(st.sampled_from(['', ' ', '  ']))}{text}")
        parts.append(draw(SEPARATORS))
    name_src = quote(name, draw(st.sampled_from(["double", "single", "raw"])))
    src = f"deploy {name_src} {{{draw(SEPARATORS)}{''.join(parts)}}}\n"
    return src, name, expected


@SETTINGS
@given(deploy_block(), st.sampled_from(["", "server { }\n", "x = 1 / 2\n", "// deploy \"no\" {\n"]))
def test_generated_deploy_block_reads_back(block, prefix: str) -> None:
    src, name, expected = block
    parsed = parse_source(prefix + src, "gen.tova")
    assert [d.name for d in parsed.deploys] == [name]
    body = parsed.deploys[0].body
    assert body.blocks == ()
    assert {f.key: f.value.value for f in body.fields} == expected
    assert [f.key for f in body.fields] == list(expected)


# -- the top-level prefilter never hides a block --------------------------------------

def read_both_ways(text: str, monkeypatch) -> tuple[str, str]:
    """The reader's result (or error) with its block-word prefilter, and without it."""
    def outcome() -> str:
        try:
            return repr(parse_source(text, "p.tova"))
        except TovaSyntaxError as e:
            return f"error {e.loc}: {e.message}"
    fast = outcome()
    with monkeypatch.context() as m:
        m.setattr(reader, "_first_block_word", lambda sc: sc.start)
        slow = outcome()
    return fast, slow


NEAR_WORDS = st.sampled_from(["1", "1_", "0x", "0xF", "1e", "1.5", "x", "_", "$", "é", ".", " ", "\n", '"',
                              "//", "/*", "*/", "=", "(", ")", "{", "}", "<p>", "</p>"])
BLOCK_WORDS = st.sampled_from(sorted(reader._BLOCK_WORDS) + ['deploy "p" { server: "s" domain: "d" }'])


@SETTINGS
@given(st.lists(st.one_of(NEAR_WORDS, BLOCK_WORDS, TOVA_WORDS), max_size=30).map("".join))
def test_the_block_word_prefilter_changes_no_result(text: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, slow = read_both_ways(text, monkeypatch)
    assert fast == slow


@SETTINGS
@given(mutated_program())
def test_the_block_word_prefilter_changes_no_result_on_mutated_programs(text: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, slow = read_both_ways(text, monkeypatch)
    assert fast == slow


@pytest.mark.parametrize("text", [
    "x = 1_server {}\n", "x = 0xFserver {}\n", "x = 1e+5deploy\n", "y = 1.5data { }\n",
    "metadata = 1\nobserver = 2\n", "s = \"server\"\n", "// deploy \"p\" {\n", "x = a.data\n",
    "éserver = 1\n", "server1 = 1\n", "x = 1 server {}\n",
    # the reading starts after the last top-level group before the first block word
    "fn f() { 1 }\nx = re.test(s)\ndata = 2\ndeploy = 3\nfn g() { server }\nserver { }\n",
    "fn f() { 1 } server { }\n", "x = f() { data } data { }\n", "a = b\n.test \"t\" { }\n",
    "data /* c */ { }\n", "test // c\n\"t\" { }\n", "deploy\n= 1\n", "concurrent = 1\n",
    "deploy prod { }\n", "deploy { }\n", "fn f() {}\nserver = 1\n", "x = { y: 1 }\ntest\n\"t\" { }\n",
    "f({ a: 1 }) data { }\n", "if x { } else { } security { }\n",
])
def test_the_block_word_prefilter_on_tricky_sources(text: str, monkeypatch) -> None:
    fast, slow = read_both_ways(text, monkeypatch)
    assert fast == slow
