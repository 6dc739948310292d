"""The reader's skip patterns without possessive quantifiers (used where CPython
mismatches them: before 3.11.4, as on Debian 12) match exactly what the originals match."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tova.lang import lexer
from tova.lang.lexer import _skip_patterns

CORPUS = Path(__file__).parent / "corpus"
SAMPLES = [' text("b001 v1") }', '("a", b(1))', "x [1, 'a'] (y", "style (a)", 'f("x\\"y")', "a(b, 'c') + [d]",
           'r"raw" (x)', "(\"é\")", "[1, 2, (3)]", "((a))", "x = y(\"s\", 'q') // c"]


POSSESSIVE_BROKEN = lexer._SIMPLE_PARENS.pattern == _skip_patterns(False)[1].pattern


@pytest.mark.parametrize(("text", "end"), [
    (' text("b001 v1") }', 17),  # a call holding a plain string is one step
    ("x [1, 'a'] (y", 11),  # an unclosed group stops the run before it
    ("style (a)", 6),  # style's parenthesis opens CSS: not skipped
])
def test_the_skip_pattern_in_use_ends_where_it_should(text, end):
    assert lexer._CODE_SKIP.match(text).end() == end


@pytest.mark.skipif(POSSESSIVE_BROKEN, reason="this CPython mismatches possessive quantifiers "
                    "(before 3.11.4); the reader uses the fallback patterns here")
def test_fallback_patterns_match_like_the_possessive_ones():
    fast, slow = _skip_patterns(True), _skip_patterns(False)
    texts = SAMPLES + [p.read_text() for p in sorted(CORPUS.rglob("*.tova"))]
    checked = 0
    for text in texts:
        for pos in range(0, len(text), 7):
            for a, b in zip(fast, slow, strict=True):
                ma, mb = a.match(text, pos), b.match(text, pos)
                assert (ma and ma.end()) == (mb and mb.end()), (text[pos:pos + 40], pos)
                checked += 1
    assert checked > 1000


# Every code point (surrogates included: a str may hold them), to compare classes on.
EVERY_CHAR = "".join(map(chr, range(0x110000)))
SPELLED = {  # the classes as first written, with BMP-wide ranges that compile slowly
    "tag stop": (r"[^A-Za-z0-9_$ \t\r\n+\-*%=!&|.:?@^~,;\u0080-\uffff]", lexer._TAG_STOP.pattern),
    "plain": (r"[A-Za-z0-9_$ \t\r\n+\-*%=!&|.:?@^~>,;\u0080-\uffff]", f"[{lexer._PLAIN}]"),
    "name start": (r"[A-Za-z_$\u0080-\uffff]", "[^" + lexer.outside_bmp("A-Za-z_$") + "]"),
    "name rest": (r"[A-Za-z0-9_$\u0080-\uffff]", "[^" + lexer.outside_bmp("A-Za-z0-9_$") + "]"),
    "in a plain string": (r'[^"\\{\x80-\U0010ffff]', r"[\x00-!#-\[\]-z|-\x7f]"),
    "in a plain 'string'": (r"[^'\\\x80-\U0010ffff]", r"[\x00-&(-\[\]-\x7f]"),
}


@pytest.mark.parametrize("name", SPELLED)
def test_the_quickly_compiled_classes_hold_the_same_characters(name):
    spelled, used = SPELLED[name]
    assert re.findall(used, EVERY_CHAR) == re.findall(spelled, EVERY_CHAR)
    assert len(re.findall(used, EVERY_CHAR)) > 0


def test_the_quick_spellings_are_the_ones_in_use():
    assert "[^" + lexer.outside_bmp("A-Za-z_$") + "][^" + lexer.outside_bmp("A-Za-z0-9_$") + "]*" \
        in lexer._GAP_TOKEN.pattern
    assert r"[\x00-!#-\[\]-z|-\x7f]" in lexer._CODE_SKIP.pattern
    assert r"[\x00-&(-\[\]-\x7f]" in lexer._CODE_SKIP.pattern
