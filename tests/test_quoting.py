"""The quoting filters against hostile input: each value comes back byte-exact through the
target's own rules (bash itself for sh; systemd's documented rules for units), or is refused."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tova import quoting

HOSTILE = [
    "",
    "plain",
    "it's",
    "'",
    "''",
    '"double"',
    "$(touch /tmp/pwned)",
    "`id`",
    "a; rm -rf /",
    "a && b || c",
    "${HOME}",
    "$HOME",
    "{braces}",
    "%h %i %%",
    "back\\slash",
    "tab\there",
    "ünïcödé ✓ 漢字",
    "-n",
    "*",
    "~root",
    "!event",
    "a\\\"b",
    "trailing\\",
]

# Text bash and systemd can carry: no NUL, no lone surrogates.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


def bash_words(words: list[str]) -> list[str]:
    """What bash makes of each quoted word: printf them NUL-separated and split."""
    script = "printf '%s\\0' " + " ".join(quoting.sh(w) for w in words)
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return out.decode("utf-8").split("\0")[:-1]


def test_sh_table_round_trips_through_bash():
    assert bash_words(HOSTILE + ["line\nbreak"]) == HOSTILE + ["line\nbreak"]


def test_sh_leaves_plain_words_bare_and_quotes_the_rest():
    assert quoting.sh("abc-1.2/x") == "abc-1.2/x"
    assert quoting.sh("") == "''"
    assert quoting.sh("it's") == "'it'\\''s'"
    assert quoting.sh("$(id)") == "'$(id)'"
    assert quoting.sh(3000) == "3000"


def test_sh_refuses_nul():
    with pytest.raises(ValueError):
        quoting.sh("a\x00b")


@settings(max_examples=60, deadline=None)
@given(st.lists(text, min_size=1, max_size=5))
def test_sh_property_round_trip(words):
    assert bash_words(words) == words


def parse_systemd_env(line: str) -> tuple[str, str]:
    """One `Environment="NAME=value"` line read with systemd's rules: C-unescape inside
    double quotes (extract_first_word with UNQUOTE|CUNESCAPE), then %-specifiers."""
    assert line.startswith('Environment="') and line.endswith('"'), line
    body = line[len('Environment="'):-1]
    out, i = [], 0
    simple = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "'": "'"}
    while i < len(body):
        ch = body[i]
        if ch == '"':
            raise AssertionError(f"unescaped quote ends the word early: {line!r}")
        if ch == "\\":
            nxt = body[i + 1]
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
            elif nxt == "x":
                out.append(chr(int(body[i + 2:i + 4], 16)))
                i += 4
            else:
                raise AssertionError(f"escape systemd would not take: {body[i:i + 2]!r}")
            continue
        out.append(ch)
        i += 1
    word = "".join(out)
    resolved, i = [], 0
    while i < len(word):
        if word[i] == "%":
            if word[i + 1:i + 2] != "%":
                raise AssertionError(f"a %-specifier would be expanded in {line!r}")
            resolved.append("%")
            i += 2
            continue
        resolved.append(word[i])
        i += 1
    name, _, value = "".join(resolved).partition("=")
    return name, value


@pytest.mark.parametrize("value", HOSTILE + ["\x1b[31mred", "bell\x07"])
def test_systemd_env_table(value):
    line = "Environment=" + quoting.systemd_env("NAME", value)
    assert parse_systemd_env(line) == ("NAME", value)


@settings(max_examples=200, deadline=None)
@given(text.filter(lambda s: "\n" not in s and "\r" not in s))
def test_systemd_env_property(value):
    line = "Environment=" + quoting.systemd_env("K_1", value)
    assert "\n" not in line
    assert parse_systemd_env(line) == ("K_1", value)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b"])
def test_systemd_env_refuses_line_breaks_and_nul(value):
    with pytest.raises(ValueError):
        quoting.systemd_env("NAME", value)


@pytest.mark.parametrize("name", ["", "1A", "A-B", "A B", "A=B", "$(id)", "É"])
def test_systemd_env_refuses_bad_names(name):
    with pytest.raises(ValueError):
        quoting.systemd_env(name, "x")


def test_systemd_path():
    assert quoting.systemd_path("/opt/tova/apps/a/data") == "/opt/tova/apps/a/data"
    assert quoting.systemd_path("/srv/100%/x") == "/srv/100%%/x"
    for bad in ["relative/x", "/a b", "/a\tb", '/a"b', "/a'b", "/a\\b", "/a;b", "/a\nb"]:
        with pytest.raises(ValueError):
            quoting.systemd_path(bad)


def test_systemd_text():
    assert quoting.systemd_text("app 100%") == "app 100%%"
    with pytest.raises(ValueError):
        quoting.systemd_text("two\nlines")


def caddy_unquote(token: str) -> str:
    """Caddy's lexer on one double-quoted token: \\" is a quote, other backslashes stay."""
    assert token[0] == token[-1] == '"'
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and body[i + 1:i + 2] == '"':
            out.append('"')
            i += 2
            continue
        assert body[i] != '"', "unescaped quote inside the token"
        out.append(body[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize(
    "value", ['"', 'say "hi"', "a b c", "$(id)", "`x`", "#not-a-comment", "ünï ✓", "*", "/e;v", ""]
)
def test_caddy_quotes_round_trip(value):
    token = quoting.caddy(value)
    assert caddy_unquote(token) == value


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "{http.request.uri}", "{$HOME}", "}", "a\\b", "x\\", "\x00"])
def test_caddy_refuses_what_its_lexer_or_replacer_would_change(value):
    with pytest.raises(ValueError):
        quoting.caddy(value)


@settings(max_examples=200, deadline=None)
@given(text)
def test_caddy_property(value):
    try:
        token = quoting.caddy(value)
    except ValueError:
        assert any(c in value for c in "{}\\") or any(ord(c) < 32 or ord(c) == 127 for c in value)
        return
    assert "\n" not in token
    assert caddy_unquote(token) == value


def test_heredoc_delimiter_avoids_lines_of_content():
    plain = "a\nb\n"
    first = quoting.heredoc_delimiter(plain)
    hostile = f"x\n{first}\n"
    second = quoting.heredoc_delimiter(hostile)
    assert second not in hostile.split("\n")
    # Content made of its own candidates still gets a fresh delimiter.
    tricky = "\n".join(quoting.heredoc_delimiter(hostile) + (f"_{i}" if i else "") for i in range(5))
    assert quoting.heredoc_delimiter(tricky) not in tricky.split("\n")


@settings(max_examples=100, deadline=None)
@given(st.lists(text, max_size=6))
def test_heredoc_delimiter_property(lines):
    content = "\n".join(lines) + "\n"
    delim = quoting.heredoc_delimiter(content)
    assert delim not in content.split("\n")
    script = f"cat <<'{delim}'\n{content}{delim}\n"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    assert out.decode("utf-8") == content
