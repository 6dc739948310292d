"""The lexer: every lexical rule of docs/tova-syntax.md section 1, as token tables, with
the compiler lexer's decisions (regex after a non-value, markup after a non-value or a
newline, markup as a flat state machine)."""

from __future__ import annotations

import pytest

from tova.errors import TovaSyntaxError
from tova.lang.lexer import scan, string_value, tokenize, tokens


def kinds(src: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in tokenize(src)]


@pytest.mark.parametrize(
    "src, expected",
    [
        # separators and layout
        ("a;b", [("name", "a"), (";", ";"), ("name", "b")]),
        # double-quoted string with an interpolation holding a string holding "}"
        ('"a {f("}")} b" x', [("str", '"a {f("}")} b"'), ("name", "x")]),
        # interpolation nested twice
        ('"a {g("b {h(1)}")} c" x', [("str", '"a {g("b {h(1)}")} c"'), ("name", "x")]),
        # ... where a "..." literal counts braces, so this one ends early, as in the compiler
        ('"a {g("b {h("}")}")} c" x', None),
        ("\"a {g('}')} c\" x", [("str", "\"a {g('}')} c\""), ("name", "x")]),
        ('"a {"""q"""} c" x', [("str", '"a {"""q"""} c"'), ("name", "x")]),
        # \{ is a literal brace: no interpolation opened
        (r'"a \{ b" }', None),
        (r'"a \{ b" x', [("str", r'"a \{ b"'), ("name", "x")]),
        # single quotes never interpolate
        ("'{' x", [("str", "'{'"), ("name", "x")]),
        ("'it\\'s' x", [("str", "'it\\'s'"), ("name", "x")]),
        # triple quotes may hold bare " and interpolate
        ('"""say "hi" {n}""" x', [("str", '"""say "hi" {n}"""'), ("name", "x")]),
        # raw strings end at the first "
        (r'r"C:\dir\" x', [("str", r'r"C:\dir\"'), ("name", "x")]),
        ('f"a {b}" x', [("str", 'f"a {b}"'), ("name", "x")]),
        # r and f only as whole identifiers
        ('br"x"', [("name", "br"), ("str", '"x"')]),
        # comments
        ("a // } { \" '\nb", [("name", "a"), ("name", "b")]),
        ("a /// doc {\nb", [("name", "a"), ("name", "b")]),
        ("a /* x /* y */ z } */ b", [("name", "a"), ("name", "b")]),
        # shebang only at the very start
        ("#!/usr/bin/env tova\nx", [("name", "x")]),
        # regex after a non-value, with braces, quotes, / in a class and escaped /
        ('x = /[{"\'/]+\\/}/gi', [("name", "x"), ("op", "="), ("regex", '/[{"\'/]+\\/}/gi')]),
        ("return /a/", [("name", "return"), ("regex", "/a/")]),
        ("(/a/)", [("(", "("), ("regex", "/a/"), (")", ")")]),
        # division after values: identifier, number, string, ), ], }, true
        ("a / b / c", [("name", "a"), ("op", "/"), ("name", "b"), ("op", "/"), ("name", "c")]),
        ("(a) / 2", [("(", "("), ("name", "a"), (")", ")"), ("op", "/"), ("num", "2")]),
        ("[1] / 2", [("[", "["), ("num", "1"), ("]", "]"), ("op", "/"), ("num", "2")]),
        ("{} / 2", [("{", "{"), ("}", "}"), ("op", "/"), ("num", "2")]),
        ('"s" / 2', [("str", '"s"'), ("op", "/"), ("num", "2")]),
        ("true / 2", [("name", "true"), ("op", "/"), ("num", "2")]),
        ("a /= 2", [("name", "a"), ("op", "/="), ("num", "2")]),
        # numbers
        ("1_000 0x1F 0b1010 0o17 1.5e3 2E-2", [("num", "1_000"), ("num", "0x1F"),
                                             ("num", "0b1010"), ("num", "0o17"),
                                             ("num", "1.5e3"), ("num", "2E-2")]),
        ("512mb", [("num", "512"), ("name", "mb")]),
        ("1..10", [("num", "1"), ("op", ".."), ("num", "10")]),
        ("15.minutes", [("num", "15"), ("op", "."), ("name", "minutes")]),
        # style blocks: CSS counted by braces only, quotes and // are not special
        ("style { a { b: url(https://x.com/a.png); c: \"it's\" } } x",
         [("style", "style { a { b: url(https://x.com/a.png); c: \"it's\" } }"), ("name", "x")]),
        ("style(scoped) { a { } } x", [("style", "style(scoped) { a { } }"), ("name", "x")]),
        ("style = 1", [("name", "style"), ("op", "="), ("num", "1")]),
        # markup after a non-value: a whole element is one opaque token; inside it, the
        # compiler's rules (an apostrophe opens a string, `}` in text is text, ...)
        ('x = <p>a } b // c</p> y',
         [('name', 'x'), ('op', '='), ('markup', '<p>a } b // c</p>'), ('name', 'y')]),
        ("x = <p>it's a } trap's</p> y",
         [('name', 'x'), ('op', '='), ('markup', "<p>it's a } trap's</p>"), ('name', 'y')]),
        ('x = <p>"Don\'t {x}" {"}"}</p> y',
         [('name', 'x'), ('op', '='), ('markup', '<p>"Don\'t {x}" {"}"}</p>'), ('name', 'y')]),
        ('x = <ul>for u in us { <li>"{u}"</li> }</ul> y',
         [('name', 'x'), ('op', '='), ('markup', '<ul>for u in us { <li>"{u}"</li> }</ul>'), ('name', 'y')]),
        ('x = <div><>"a"<p /></></div> y',
         [('name', 'x'), ('op', '='), ('markup', '<div><>"a"<p /></></div>'), ('name', 'y')]),
        ("x = 0\n<p>{x}</p>",
         [('name', 'x'), ('op', '='), ('num', '0'), ('markup', '<p>{x}</p>')]),
        ("<>\n  <p />\n</>\ny",
         [('markup', '<>\n  <p />\n</>'), ('name', 'y')]),
        ("x = a\n/re/.test(y)",
         [('name', 'x'), ('op', '='), ('name', 'a'), ('op', '/'), ('name', 're'), ('op', '/'), ('op', '.'),
          ('name', 'test'), ('(', '('), ('name', 'y'), (')', ')')]),
        ('x = <a href="/x" />\ny',
         [('name', 'x'), ('op', '='), ('markup', '<a href="/x" />'), ('name', 'y')]),
        # the compiler rejects these too: no void elements, no markup right after `)`
        ('x = <div><br><p>"a"</p></div>', None),
        ('x = <ul>{items.map(fn(i) <li>"{i}"</li>)}</ul>', None),
        # less-than after a value is comparison
        ("a <b", [("name", "a"), ("op", "<"), ("name", "b")]),
        ("a <= b", [("name", "a"), ("op", "<="), ("name", "b")]),
    ],
)
def test_token_table(src: str, expected: list[tuple[str, str]] | None) -> None:
    if expected is None:
        with pytest.raises(TovaSyntaxError):
            tokenize(src)
    else:
        assert kinds(src) == expected


def test_positions_are_one_based_line_and_column() -> None:
    toks = tokenize('x = 1\n  server {\n\t"a"\n}')
    assert [(t.text, t.line, t.col) for t in toks] == [
        ("x", 1, 1), ("=", 1, 3), ("1", 1, 5), ("server", 2, 3), ("{", 2, 10),
        ('"a"', 3, 2), ("}", 4, 1),
    ]


def test_brackets_are_matched() -> None:
    text = "a { b ( c [ d ] ) } e"
    sc = scan(text)
    toks, closes = tokens(sc, 0, len(text), collapse=False)
    pairs = {toks[o][0] + toks[c][0] for o, c in closes.items()}
    assert pairs == {"{}", "()", "[]"}
    assert closes[1] == 9
    collapsed, closes = tokens(sc, 0, len(text))
    assert [k for k, _, _ in collapsed] == ["name", "{", "}", "name"] and closes == {1: 2}


@pytest.mark.parametrize(
    "src, message, line, col",
    [
        ('x = 1\ny = "abc\n', "unterminated string", 2, 5),
        ("y = 'abc", "unterminated string", 1, 5),
        ('y = """abc ""', "unterminated triple-quoted string", 1, 5),
        ('y = r"abc', "unterminated raw string", 1, 5),
        ('y = "a {b', "unterminated string interpolation", 1, 5),
        ('y = "a {b"', "unterminated string interpolation", 1, 5),
        ("a\n  /* x /* y */\n", "unterminated block comment", 2, 3),
        ("x = /abc\n/", "unterminated regex literal", 1, 5),
        ("server {\n  fn a() {\n}\n", "'{' is never closed", 1, 8),
        ("f(a, [b)", "')' does not match '['", 1, 8),
        ("x = 1 }", "unexpected '}'", 1, 7),
        ("style { a { }", "unterminated style block", 1, 1),
        ("x = <div><p>", "unterminated markup element", 1, 5),
        ("x = 1 # no", "unexpected character '#'", 1, 7),
        ("x = 1\u200b\nserver { }", "U+200B ZERO WIDTH SPACE", 1, 6),
        ("x = 1\n\ufeffserver { }", "U+FEFF", 2, 1),
        ("\ufeffserver { }", "U+FEFF", 1, 1),
        ("x = 1\x00\nserver { }", "U+0000", 1, 6),
        ("x = 1\x0c\nserver { }", "U+000C", 1, 6),
        ("x = a \\ b", "unexpected character '\\'", 1, 7),
        ("x = `a`", "unexpected character '`'", 1, 5),
        ("x = \U0001F600", "U+1F600", 1, 5),
    ],
)
def test_lexical_errors_have_exact_locations(src: str, message: str, line: int, col: int) -> None:
    with pytest.raises(TovaSyntaxError) as info:
        scan(src, "app.tova")
    err = info.value
    assert message in err.message
    assert (err.loc.file, err.loc.line, err.loc.col) == ("app.tova", line, col)
    assert err.source_line == src.split("\n")[line - 1]
    assert err.hint


def test_deep_markup_nesting_is_flat_and_fine() -> None:
    """Markup is a flat state machine, as in the compiler: depth costs nothing."""
    depth = 40_000
    src = "x = " + "<a>" * depth + "</a>" * depth + '\ndeploy "p" { }'
    toks = tokenize(src)
    assert [t.kind for t in toks] == ["name", "op", "markup", "name", "str", "{", "}"]


def test_brackets_deeper_than_the_compiler_allows_are_refused() -> None:
    """The compiler's parser stops at 200 nested expressions; we stop at 1000 brackets,
    with a location, before anything else can grow."""
    with pytest.raises(TovaSyntaxError, match="nested more than 1000") as info:
        scan("x = " + "[" * 1002 + "]" * 1002, "a.tova")
    assert (info.value.loc.line, info.value.loc.col) == (1, 1005)
    scan("x = " + "[" * 1000 + "]" * 1000)


@pytest.mark.parametrize(
    "src",
    [
        "x = \u00e9t\u00e9 + caf\u00e9",  # letters make identifiers
        "x = \"\u200b \ufeff \x0c \\u{0}\"",  # anything goes inside strings
        "// \u200b \x00 # `\nx = 1",  # and comments
        "x = <p>\u200b # ` \\</p>",  # and markup text
        "x = 'a\u2028b'",
    ],
)
def test_allowed_characters(src: str) -> None:
    tokenize(src)


@pytest.mark.parametrize(
    "src, value",
    [
        ('"a\\nb"', "a\nb"),
        ('"a \\{ b \\}"', "a { b }"),
        ('"x {y}"', None),
        ("'a {b}'", "a {b}"),
        ("'it\\'s'", "it's"),
        (r'r"C:\dir\"', "C:\\dir\\"),
        ('f"plain"', "plain"),
        ('"""\n    a "q"\n      b\n    """', 'a "q"\n  b'),
        ('"\\d"', "\\d"),
    ],
)
def test_string_values(src: str, value: str | None) -> None:
    assert string_value(src) == value


def test_grouped_operator_pattern_reads_like_the_operator_list() -> None:
    """_OP_PATTERN (operators grouped by first character, for speed) takes the same
    operator as an alternation of _OPS followed by the one-character operators, on every
    run of up to four operator characters."""
    import itertools
    import re

    from tova.lang import lexer

    plain = re.compile("|".join(re.escape(o) for o in lexer._OPS) + r"|[-+*/%=!&|^~?.:@<>]")
    grouped = re.compile(lexer._OP_PATTERN)
    chars = "-+*/%=!&|^~?.:@<>x"
    for n in range(1, 5):
        for combo in itertools.product(chars, repeat=n):
            run = "".join(combo)
            a, b = plain.match(run), grouped.match(run)
            assert (a and a.end()) == (b and b.end()), run
