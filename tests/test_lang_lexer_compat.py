"""The reader's skip patterns without possessive quantifiers (used where CPython
mismatches them: before 3.11.4, as on Debian 12) match exactly what the originals match."""

from __future__ import annotations

from pathlib import Path

from tova.lang.lexer import _skip_patterns

CORPUS = Path(__file__).parent / "corpus"
SAMPLES = [' text("b001 v1") }', '("a", b(1))', "x [1, 'a'] (y", "style (a)", 'f("x\\"y")', "a(b, 'c') + [d]",
           'r"raw" (x)', "(\"é\")", "[1, 2, (3)]", "((a))", "x = y(\"s\", 'q') // c"]


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
