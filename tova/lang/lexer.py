"""The Tova lexer's decisions, without its tokens.

The deploy toolkit needs block boundaries and a few statements, so reading a file happens
in two passes:

1. `scan()` walks the whole file once and records only what can hide a brace: strings
   (with nested interpolation), comments, regex literals, style blocks and markup text,
   as opaque spans, plus the matching `}` of every `{` token. It makes the same choices as
   the compiler's lexer (docs/tova-syntax.md section 1): a `/` starts a regex only after a
   non-value token; a `<` starts markup after a non-value token *or a newline*; markup is
   a flat state machine (tags, `{expr}`, `if`/`for`/`match` bodies) like the compiler's,
   so nesting depth costs nothing and nothing recurses. Ordinary code between the spans is
   jumped over by one regex match (the C engine does the per-character work), together
   with the plain strings and bracket groups in it that need no decision (_CODE_SKIP):
   those make no span, and pass 2 reads them as ordinary tokens.
2. `tokens()` tokenizes one region (the top level, or the inside of one `{ }` group)
   into `(kind, start, end)` tuples, with nested `{ }` groups collapsed to their two
   braces. The reader only ever tokenizes the few regions it looks into.

Token kinds: "name", "num", "str", "regex", "style", "markup" (a whole element, tags to
closing tag), "text" (markup text), "op", and the
punctuation characters themselves: "{", "}", "(", ")", "[", "]", ",", ";".

Every character the compiler's lexer rejects outside strings, comments and markup text
(`#`, a backslash, control characters such as NUL and form feed, a zero-width space, a
BOM, characters beyond U+FFFF, ...) is a located "unexpected character" error.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from tova.errors import Location, TovaSyntaxError

# The compiler's keywords (tokens.js). Only `true false nil` among them are values.
KEYWORDS = frozenset(
    """var let fn return if elif else for while match type import from export as and or
    not in true false nil break continue try catch finally async await guard interface
    derive pub impl trait defer mut yield loop when extern default is with server browser
    client shared route state computed effect component store form field group steps""".split()
)
VALUE_WORDS = frozenset({"true", "false", "nil"})
NON_VALUE_WORDS = KEYWORDS - VALUE_WORDS
_CF_WORDS = ("if", "for", "elif", "else", "match")

# Deeper bracket nesting is refused (the compiler's parser stops at 200 nested expressions).
MAX_NESTING = 1000

# What the previous token was, for the regex and markup decisions.
_NONE, _VALUE, _OTHER, _ASSIGN, _FOR = 0, 1, 2, 3, 4

def outside_bmp(ascii_body: str) -> str:
    """The body of a character class holding every character NOT in `[ascii_body]` nor in
    U+0080..U+FFFF (the other ASCII ones, and U+10000 up). re compiles a range across the
    BMP by visiting each of its code points (about 4 ms per class, 0.1 s of every hook's
    start-up); the same set as the complement of this compiles at once."""
    member = re.compile(f"[{ascii_body}]")
    others = "".join(f"\\x{i:02x}" for i in range(128) if not member.match(chr(i)))
    return others + "\\U00010000-\\U0010ffff"


# Characters that never need a decision in code: identifiers, numbers, whitespace and
# operators other than `/` and `<` (and `>` inside a tag). Non-ASCII characters up to
# U+FFFF pass here and are checked once at the end (letters are identifiers).
# _TAG_STOP is [^A-Za-z0-9_$ \t\r\n+\-*%=!&|.:?@^~,;\u0080-\uffff].
_TAG_STOP = re.compile("[" + outside_bmp(r"A-Za-z0-9_$ \t\r\n+\-*%=!&|.:?@^~,;") + "]")
_TAG_PLAIN = "^" + outside_bmp(r"A-Za-z0-9_$ \t\r\n+\-*%=!&|.:?@^~,;")
IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
_OP_CHARS = frozenset("+-*%=!&|.:?@^~>,;<")
_STYLE_BEFORE = frozenset("e \t\r\n")  # `style{`, `style (`: the only ways to open CSS
_GAP_VALUE_END = frozenset("\"')]")

_SIMPLE_DQ = re.compile(r'"[^"\\{]*"')
# The C regex engine does the per-character work: one match jumps over ordinary code
# together with the strings and bracket groups that need no decision. Such a string is
# ASCII without escapes or `{` (and not r"/f"-prefixed, nor next to another quote); such
# a group holds only plain code and such strings. They make no span: pass 2 reads them
# with _GAP_TOKEN. A group right after `style` or whitespace stays a stop (`style (`).
# [_PLAIN] is [A-Za-z0-9_$ \t\r\n+\-*%=!&|.:?@^~>,;\u0080-\uffff], spelled as its complement.
_PLAIN = "^" + outside_bmp(r"A-Za-z0-9_$ \t\r\n+\-*%=!&|.:?@^~>,;")


def _skip_patterns(possessive: bool) -> tuple[re.Pattern[str], ...]:
    """_CODE_SKIP, _SIMPLE_PARENS, _SIMPLE_SQUARE, _TAG_SKIP. Without possessive
    quantifiers a plain run is taken one character per step (no nested quantifier to
    backtrack through)."""
    many, run = ("*+", "++") if possessive else ("*", "")
    # ASCII but for the quote and a backslash (and `{`): a class of ASCII ranges compiles at once.
    plain_str = rf"""(?<![rf])"[\x00-!#-\[\]-z|-\x7f]{many}"(?!")|'[\x00-&(-\[\]-\x7f]{many}'"""
    inner = rf"(?:[{_PLAIN}]{run}|{plain_str}){many}"
    skip = rf"(?:[{_PLAIN}]{run}|{plain_str}|(?<!style)(?<![ \t\r\n])\({inner}\)|\[{inner}\]){many}"
    tag = rf"(?:[{_TAG_PLAIN}]{run}|{plain_str}){many}"
    return re.compile(skip), re.compile(rf"\({inner}\)"), re.compile(rf"\[{inner}\]"), re.compile(tag)


# A bracket group holding only plain code and such strings: one step (_SIMPLE_PARENS).
# Inside a tag, _TAG_SKIP jumps over what _TAG_STOP would not stop at and such strings
# (attribute values: the whole element becomes one span anyway, and they are ASCII).
_CODE_SKIP, _SIMPLE_PARENS, _SIMPLE_SQUARE, _TAG_SKIP = _skip_patterns(possessive=True)
if _SIMPLE_PARENS.match('("a")') is None:
    # CPython before 3.11.4 (Debian 12 ships 3.11.2) mismatches a possessive quantifier
    # inside a repeated group: every string in a call failed the reader there.
    _CODE_SKIP, _SIMPLE_PARENS, _SIMPLE_SQUARE, _TAG_SKIP = _skip_patterns(possessive=False)
_DQ_STOP = re.compile(r'["\\{]')
_INTERP_STOP = re.compile(r"[\"'`{}]")
_NESTED_STOP = {'"': re.compile(r'[\\"{}]'), "'": re.compile(r"[\\']"), "`": re.compile(r"[\\`$}]")}
_SQ = re.compile(r"'[^'\\]*(?:\\[\s\S][^'\\]*)*'")
_BLOCK_COMMENT = re.compile(r"/\*|\*/")
_REGEX = re.compile(r"/[^/\\\[\n]*(?:(?:\\[^\n]|\[(?:\\[^\n]|[^\]\\\n])*\])[^/\\\[\n]*)*/[gimsuydv]*")
_CSS_STOP = re.compile(r"[{}]")
_WS = re.compile(r"[ \t\r\n]*")
# The common markup children, whitespace before them included: a tag without attributes
# (group 1: its `/` when closing; `>=` would be an operator, not the tag's end), a plain
# string (group 2), or nothing (the match ends where the whitespace does).
_CHILD = re.compile(r'[ \t\r\n]*(?:<(/?)(?:[A-Za-z_$][A-Za-z0-9_$]*)?>(?!=)|("[^"\\{]*")(?!")|)')
_CHILD_FAST_START = frozenset(' \t\r\n<"')
_CF_WORD = re.compile(r"(?:if|for|elif|else|match)(?![\w$])")
_TEXT_END = re.compile(r"""[<{"']|(?<=[ \t\n\r])(?:if|for|elif|else|match)(?![\w$])""")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_NL = re.compile(r"\n")

_OPS = ("...", "..=", "<<=", "..", "=>", "->", "==", "!=", "<=", ">=", "<<", "&&", "||", "|>",
        "::", "?.", "??", "**", "+=", "-=", "*=", "/=", "&=", "|=", "^=")
# The operators of _OPS (the first of them that matches, as an alternation of _OPS would
# take it) and the one-character ones, grouped by first character: the regex engine
# then tries one branch instead of every operator (tests/test_lang_lexer.py checks that
# both read the same).
_OP_PATTERN = (r"\.(?:\.[.=]?)?|<(?:<=?|=)?|=[>=]?|-[>=]?|!=?|>=?|&[&=]?|\|[|>=]?|::?|\?[.?]?|\*[*=]?"
               r"|\+=?|/=?|\^=?|[%~@]")
_GAP_TOKEN = re.compile(
    r"""[ \t\r\n]*(?:
    (?P<name>[^""" + outside_bmp("A-Za-z_$") + "]" + "[^" + outside_bmp("A-Za-z0-9_$") + r"""]*)
   |(?P<num>0[xX][0-9a-fA-F_]*|0[bB][01_]*|0[oO][0-7_]*
            |\d[\d_]*(?:\.(?=[\d_])[\d_]*)?(?:[eE][+-]?\d+)?)
   |(?P<str>"[^"]*"|'[^']*')  # only the plain strings that pass 1 left without a span
   |(?P<punct>[{}()\[\],;])
   |(?P<op>"""
    + _OP_PATTERN
    + r""")
   |(?P<eof>\Z)
    )""",
    re.VERBOSE,
)
_PAIRS = {")": "(", "]": "[", "}": "{"}
_CLOSERS = {"{": "}", "(": ")", "[": "]"}


class Scanned:
    """One file after pass 1: opaque spans (sorted, disjoint) and `{` → `}` positions."""

    __slots__ = ("text", "path", "start", "starts", "ends", "kinds", "closes", "top_opens", "_nl", "_at", "_line",
                 "_bol")

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.start = 0  # after a shebang line
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.kinds: list[str] = []
        self.closes: dict[int, int] = {}
        self.top_opens: list[int] = []  # the `{` of the top level's groups, in order
        self._nl: list[int] | None = None
        self._at, self._line, self._bol = 0, 1, 0  # the furthest place asked for so far

    # -- locations ----------------------------------------------------------------------
    def line_col(self, pos: int) -> tuple[int, int]:
        loc = self.loc(pos)
        return loc.line, loc.col

    def loc(self, pos: int) -> Location:
        at = self._at
        if pos >= at:
            # the reader asks in source order: count only the newlines since last time
            # (each character is looked at once: linear however long the lines are)
            text = self.text
            k = text.count("\n", at, pos)
            if k:
                self._line += k
                self._bol = text.rfind("\n", at, pos) + 1
            self._at = pos
            return Location(self.path, self._line, pos - self._bol + 1)
        if self._nl is None:
            self._nl = [m.start() for m in _NL.finditer(self.text)]
        idx = bisect_left(self._nl, pos)
        line_start = self._nl[idx - 1] + 1 if idx else 0
        return Location(self.path, idx + 1, pos - line_start + 1)

    def line_text(self, pos: int) -> str:
        start = self.text.rfind("\n", 0, pos) + 1
        end = self.text.find("\n", pos)
        return self.text[start : end if end != -1 else len(self.text)]

    def error(self, message: str, pos: int, hint: str | None = None) -> TovaSyntaxError:
        pos = min(max(pos, 0), len(self.text))
        return TovaSyntaxError(message, hint=hint, loc=self.loc(pos), source_line=self.line_text(pos))

    def span_at(self, pos: int) -> int:
        """Index of the opaque span holding pos, or -1."""
        i = bisect_right(self.starts, pos) - 1
        return i if i >= 0 and self.ends[i] > pos else -1


def scan(text: str, path: str = "<input>") -> Scanned:
    """Pass 1 over one file; raises TovaSyntaxError with the place of the first problem."""
    sc = Scanned(text, path)
    p = _Pass(sc)
    p.run()
    if not text.isascii():
        _check_code_non_ascii(sc)
    if p.deferred is not None:  # (the compiler's lexer errors come before its parser's)
        raise p.deferred
    return sc


def _check_code_non_ascii(sc: Scanned) -> None:
    """_check_non_ascii() over the code between the spans, one stretch at a time: an
    all-ASCII stretch (the usual case) costs one str.isascii(), where a regex search for
    non-ASCII characters would look at every character of the file."""
    text = sc.text
    pos = sc.start
    for start, end in zip(sc.starts, sc.ends, strict=True):
        if start > pos and not text[pos:start].isascii():
            _check_non_ascii(sc, pos, start)
        pos = end
    if not text[pos:].isascii():
        _check_non_ascii(sc, pos, len(text))


def unexpected(sc: Scanned, pos: int) -> TovaSyntaxError:
    ch = sc.text[pos]
    name = unicodedata.name(ch, "")
    shown = f"'{ch}'" if ch.isprintable() and not ch.isspace() and ch != "\ufeff" else ""
    what = f"U+{ord(ch):04X}" + (f" {name}" if name else "")
    message = f"unexpected character {shown} ({what})" if shown else f"unexpected character {what}"
    if ch == "#":
        hint = "Tova comments start with // (only a first-line #! is allowed)"
    elif ch == "\\":
        hint = "a backslash belongs inside a string"
    else:
        hint = "the Tova compiler rejects this character here; delete it (it may be invisible)"
    return sc.error(message, pos, hint)


def _check_non_ascii(sc: Scanned, lo: int = 0, hi: int | None = None) -> None:
    """Outside opaque spans, non-ASCII characters must make identifiers, as in the
    compiler's lexer: a letter starts one; digits and marks may continue one."""
    text = sc.text
    for m in _NON_ASCII.finditer(text, max(lo, sc.start), len(text) if hi is None else hi):
        pos = m.start()
        at = sc.span_at(pos)
        if at != -1 and (sc.kinds[at] != "markup" or hi is None):
            continue  # in a string, comment...; markup was checked when it closed
        for p in range(pos, m.end()):
            at = sc.span_at(p)
            if at != -1 and (hi is None or sc.kinds[at] != "markup"):
                continue
            cat = unicodedata.category(text[p])
            if cat[0] == "L":
                continue
            before = text[p - 1] if p else " "
            if cat[0] in "NM" and (before in IDENT_CHARS or (before > "\x7f" and before.isalnum())):
                continue
            raise unexpected(sc, p)


class _Pass:
    """Pass 1: the compiler lexer's state machine, jumping over ordinary code."""

    def __init__(self, sc: Scanned) -> None:
        self.sc = sc
        self.text = sc.text
        self.n = len(sc.text)
        # the brackets open where the current outermost markup element began: how many,
        # and the innermost one
        self.markup_level = 0
        self.markup_open: tuple[str, int] | None = None
        self.deferred: TovaSyntaxError | None = None

    def err(self, message: str, pos: int, hint: str | None = None) -> TovaSyntaxError:
        return self.sc.error(message, pos, hint)

    def run(self) -> None:  # noqa: C901 - one loop on purpose: this is the hot path
        text, n, sc = self.text, self.n, self.sc
        closes = sc.closes
        starts, ends, kinds = sc.starts, sc.ends, sc.kinds
        top_opens = sc.top_opens
        pos = 0
        if text.startswith("#!"):
            nl = text.find("\n")
            pos = n if nl == -1 else nl + 1
            sc.start = pos
        brackets: list[tuple[str, int]] = []
        # markup state, as in the compiler's lexer
        jstack: list[str] = []  # "tag" | "cfblock" | "matchblock"
        tag_mode = ""  # "" | "open" | "close"
        self_closing = False
        expr_depth = 0
        cf: list[Any] | None = None  # [paren, brace, keyword] while reading `if ... {`
        match_depth = 0
        markup_start = -1  # where the current outermost element began
        markup_k = 0  # how many spans there were then
        # the previous token: kind of the last one before `gap`, and whether a newline
        # token followed it (newlines are tokens for the markup rule only)
        prev = _NONE
        prev_nl = False
        gap = pos
        code_skip = _CODE_SKIP.match
        tag_skip = _TAG_SKIP.match

        while True:
            if jstack and not expr_depth and not tag_mode and cf is None and not match_depth:
                # markup children: text, strings, {expr}, tags, control flow
                if pos >= n:
                    break
                c = text[pos]
                if c == "}" and jstack[-1] == "cfblock":
                    jstack.pop()
                    self._close(brackets, "}", pos)
                    pos += 1
                    prev, prev_nl, gap = _VALUE, False, pos
                    continue
                if c in _CHILD_FAST_START:
                    # the common children, whitespace before them included, in one step
                    cm = _CHILD.match(text, pos)  # (always matches, the whitespace at least)
                    slash = cm.group(1)  # type: ignore[union-attr]
                    if slash is not None:  # a tag without attributes
                        pos = cm.end()  # type: ignore[union-attr]
                        if slash:  # closing
                            jstack.pop()
                            if not jstack:
                                self.collapse_markup(markup_start, markup_k, pos, brackets)
                                markup_start = -1
                        else:
                            jstack.append("tag")
                        prev, prev_nl, gap = _OTHER, False, pos
                        continue
                    pp = cm.end()  # type: ignore[union-attr]
                    if cm.start(2) >= 0:  # type: ignore[union-attr]  # a plain string
                        starts.append(cm.start(2))  # type: ignore[union-attr]
                        ends.append(pp)
                        kinds.append("str")
                        pos = pp
                        prev, prev_nl, gap = _VALUE, False, pos
                        continue
                if c in " \t\r\n":  # (pp: where the whitespace ends)
                    if pp >= n or text[pp] in "<{}\"'" or _CF_WORD.match(text, pp):
                        pos = pp
                        continue
                elif c == "{":
                    brackets.append(("{", pos))
                    if len(brackets) > MAX_NESTING:
                        raise self.too_deep(pos)
                    expr_depth = 1
                    pos += 1
                    prev, prev_nl, gap = _OTHER, False, pos
                    continue
                elif c == "<":  # a tag with attributes (simple ones were taken above)
                    nxt = text[pos + 1 : pos + 2]
                    if nxt == "/":
                        tag_mode = "close"
                    elif nxt == ">" or _is_alpha(nxt):
                        tag_mode = "open"
                    pos += 2 if nxt == "=" else 1
                    prev, prev_nl, gap = _OTHER, False, pos
                    continue
                elif c == '"':
                    end = self.dq_string(pos)
                    self._span(pos, end, "str")
                    pos = end
                    prev, prev_nl, gap = _VALUE, False, pos
                    continue
                elif c == "'":
                    end = self.sq_string(pos)
                    self._span(pos, end, "str")
                    pos = end
                    prev, prev_nl, gap = _VALUE, False, pos
                    continue
                else:
                    w = _CF_WORD.match(text, pos)
                    if w:
                        cf = [0, 0, w.group()]
                        pos = w.end()
                        prev, prev_nl, gap = (_FOR if cf[2] == "for" else _OTHER), False, pos
                        continue
                m = _TEXT_END.search(text, pos + 1)
                end = m.start() if m else n
                self._span(pos, end, "text")
                pos = end
                prev, prev_nl, gap = _OTHER, False, pos
                continue

            if tag_mode:
                q = tag_skip(text, pos).end()  # type: ignore[union-attr]  # (matches "")
                if q >= n:
                    break
            else:
                q = code_skip(text, pos).end()  # type: ignore[union-attr]  # (matches "")
                if q >= n:
                    break
            c = text[q]
            if c == '"':
                if q > gap and text[q - 1] in "rf" and (q - 1 == 0 or text[q - 2] not in IDENT_CHARS
                                                       and not (text[q - 2] > "\x7f" and text[q - 2].isalnum())):
                    begin = q - 1
                    if text[begin] == "r":
                        close = text.find('"', q + 1)
                        if close == -1:
                            raise self.err("unterminated raw string", begin,
                                           'a raw string r"..." ends at the next "')
                        end = close + 1
                    else:
                        end = self.dq_string(q)
                else:
                    begin = q
                    if text.startswith('"""', q):
                        end = self.triple_string(q)
                    else:
                        m = _SIMPLE_DQ.match(text, q)
                        end = m.end() if m is not None else self.dq_string(q)
                starts.append(begin)
                ends.append(end)
                kinds.append("str")
                pos = end
                prev, prev_nl, gap = _VALUE, False, pos
            elif c == "{" or c == "}" or c == "(" or c == ")" or c == "[" or c == "]":
                if (c == "{" or c == "(") and text[q - 1: q] in _STYLE_BEFORE and \
                        text.find("style", gap, q) != -1:  # (gaps are disjoint: linear)
                    style_end = self.style_block(q, gap)
                    if style_end:
                        pos = style_end
                        prev, prev_nl, gap = _OTHER, False, pos
                        continue
                if c == "{":
                    if cf is not None:
                        if cf[1] > 0 or cf[0] > 0:
                            cf[1] += 1
                        else:
                            prev, prev_nl = self.fold(gap, q, prev, prev_nl)
                            if not prev_nl and (prev == _ASSIGN or prev == _FOR):
                                cf[1] += 1
                            elif cf[2] == "match":
                                cf = None
                                jstack.append("matchblock")
                                match_depth = 1
                            else:
                                cf = None
                                jstack.append("cfblock")
                    elif expr_depth:
                        expr_depth += 1
                    elif match_depth:
                        match_depth += 1
                    elif not brackets and not jstack and not tag_mode:
                        top_opens.append(q)
                    brackets.append(("{", q))
                    if len(brackets) > MAX_NESTING:
                        raise self.too_deep(q)
                    prev = _OTHER
                elif c == "}":
                    if brackets and brackets[-1][0] == "{":
                        closes[brackets.pop()[1]] = q
                    else:
                        self._close(brackets, "}", q)
                    if cf is not None and cf[1] > 0:
                        cf[1] -= 1
                    elif match_depth:
                        match_depth -= 1
                        if not match_depth and jstack and jstack[-1] == "matchblock":
                            jstack.pop()
                    elif expr_depth:
                        expr_depth -= 1
                    prev = _VALUE
                elif c == "(" or c == "[":
                    if not tag_mode:
                        sm = (_SIMPLE_PARENS if c == "(" else _SIMPLE_SQUARE).match(text, q)
                        if sm is not None:  # `(a, b + 1)`: nothing inside needs a decision
                            pos = sm.end()
                            prev, prev_nl, gap = _VALUE, False, pos
                            continue
                    if cf is not None:
                        cf[0] += 1
                    brackets.append((c, q))
                    if len(brackets) > MAX_NESTING:
                        raise self.too_deep(q)
                    prev = _OTHER
                else:
                    if brackets and brackets[-1][0] == _PAIRS[c]:
                        brackets.pop()
                    else:
                        self._close(brackets, c, q)
                    if cf is not None and cf[0] > 0:
                        cf[0] -= 1
                    prev = _VALUE
                pos = q + 1
                prev_nl, gap = False, pos
            elif c == "/":
                nxt = text[q + 1 : q + 2]
                if nxt == "/":
                    if gap < q:
                        seg = text[gap:q]
                        if seg.isspace():  # only layout since the last token (the usual case)
                            prev_nl = prev_nl or "\n" in seg
                        else:
                            prev, prev_nl = self.fold(gap, q, prev, prev_nl)
                    end = text.find("\n", q)
                    end = n if end == -1 else end
                    self._span(q, end, "comment")
                    if text.startswith("///", q):  # a doc comment is a token
                        prev, prev_nl = _OTHER, False
                    pos = gap = end
                elif nxt == "*":
                    prev, prev_nl = self.fold(gap, q, prev, prev_nl)
                    end = self.block_comment(q)
                    self._span(q, end, "comment")
                    pos = gap = end
                else:
                    regex = False
                    if nxt != "=" and not jstack:
                        prev, prev_nl = self.fold(gap, q, prev, prev_nl)
                        if prev == _NONE:
                            regex = q + 1 < n and not (nxt.isspace() or nxt in "/*=")
                        else:
                            regex = prev != _VALUE
                    if regex:
                        rm = _REGEX.match(text, q)
                        if rm is None:
                            raise self.err(
                                "unterminated regex literal", q,
                                "a regex /.../ must end on the same line; write `a / b` "
                                "with a value before `/` for division",
                            )
                        self._span(q, rm.end(), "regex")
                        pos = rm.end()
                    else:
                        if nxt != "=" and tag_mode == "open":
                            self_closing = True
                        pos = q + (2 if nxt == "=" else 1)
                    prev, prev_nl, gap = _OTHER, False, pos
            elif c == "<":
                prev, prev_nl = self.fold(gap, q, prev, prev_nl)
                before = _OTHER if prev_nl else prev  # the token right before, newline included
                nxt = text[q + 1 : q + 2]
                if nxt == "<" and before == _VALUE:
                    pos = q + (3 if text.startswith("=", q + 2) else 2)
                elif nxt == "=":
                    pos = q + 2
                else:
                    if not tag_mode:
                        if nxt == "/":
                            tag_mode = "close"
                        elif nxt == ">":
                            if jstack or before != _VALUE:
                                tag_mode = "open"
                        elif _is_alpha(nxt) and before != _VALUE:
                            tag_mode = "open"
                        if tag_mode and not jstack and markup_start < 0:
                            markup_start, markup_k = q, len(starts)
                            self.markup_level = len(brackets)
                            self.markup_open = brackets[-1] if brackets else None
                    pos = q + 1
                prev, prev_nl, gap = _OTHER, False, pos
            elif c == ">":  # only searched for inside a tag
                if text.startswith("=", q + 1):
                    pos = q + 2
                elif q > gap and text[q - 1] in "=-" and self.ends_arrow(gap, q):
                    pos = q + 1  # `=>` or `->`: an arrow, not the end of the tag
                else:
                    if self_closing:
                        tag_mode, self_closing = "", False
                    elif tag_mode == "close":
                        tag_mode = ""
                        if jstack:
                            jstack.pop()
                    elif tag_mode == "open":
                        tag_mode = ""
                        jstack.append("tag")
                    pos = q + 1
                    if not jstack and not tag_mode and markup_start >= 0:
                        self.collapse_markup(markup_start, markup_k, pos, brackets)
                        markup_start = -1
                prev, prev_nl, gap = _OTHER, False, pos
            elif c == "'":
                end = self.sq_string(q)
                self._span(q, end, "str")
                pos = end
                prev, prev_nl, gap = _VALUE, False, pos
            else:
                raise unexpected(sc, q)

        if brackets:
            ch, at = brackets[-1]
            raise self.err(f"'{ch}' is never closed", at,
                           f"add the matching '{_CLOSERS[ch]}' before the end of the file")
        if jstack or tag_mode:
            at = markup_start if markup_start >= 0 else self.n
            raise self.err(
                "unterminated markup element", at,
                "close every <tag> with </tag> or write <tag />; quote prose: <p>\"text\"</p>",
            )

    # -- helpers ------------------------------------------------------------------------
    def too_deep(self, pos: int) -> TovaSyntaxError:
        return self.err(f"brackets nested more than {MAX_NESTING} deep", pos,
                        "the Tova compiler stops at 200 nested expressions; flatten this code")

    def collapse_markup(self, start: int, k: int, end: int, brackets: list[tuple[str, int]]) -> None:
        """A whole element ended: one opaque "markup" span replaces the spans inside it
        (the reader never looks inside markup, and a 40,000-deep element stays one
        token). Its code parts are checked for rejected characters first."""
        sc = self.sc
        level = self.markup_level
        if level and (len(brackets) < level or brackets[level - 1] is not self.markup_open):
            # a `}` or `)` in a tag closed a bracket opened before the element (the
            # compiler's parser fails on it inside the tag): the element would hide
            # where that group ends, and pass 2 would read on from inside it. Raised
            # once the whole file is read, if nothing else was found wrong first.
            _, at = self.markup_open  # type: ignore[misc]
            if self.deferred is None:
                self.deferred = self.err(
                    "this markup element closes a bracket opened before it", start,
                    f"a bracket opened at line {sc.line_col(at)[0]} is closed inside this "
                    "element's tag; close the element first (<tag> ... </tag> or <tag />)")
        if not self.text.isascii() and not self.text[start:end].isascii():
            _check_non_ascii(sc, start, end)
        del sc.starts[k:], sc.ends[k:], sc.kinds[k:]
        self._span(start, end, "markup")

    def _span(self, start: int, end: int, kind: str) -> None:
        sc = self.sc
        sc.starts.append(start)
        sc.ends.append(end)
        sc.kinds.append(kind)

    def _close(self, brackets: list[tuple[str, int]], ch: str, pos: int) -> int:
        if not brackets:
            raise self.err(f"unexpected '{ch}' with nothing open", pos,
                           "remove it, or add the opening bracket it belongs to")
        opener, at = brackets.pop()
        if opener != _PAIRS[ch]:
            line, col = self.sc.line_col(at)
            raise self.err(f"'{ch}' does not match '{opener}' opened at line {line}, col {col}",
                           pos, "check the brackets between these two places")
        if ch == "}":
            self.sc.closes[at] = pos
        return at

    def fold(self, gap: int, q: int, prev: int, prev_nl: bool) -> tuple[int, bool]:
        """The previous token after the plain code text[gap:q] (no spans inside)."""
        if gap >= q:
            return prev, prev_nl
        seg = self.text[gap:q]
        s = seg.rstrip(" \t\r\n")
        if not s:
            return prev, prev_nl or "\n" in seg
        nl = "\n" in seg[len(s):]
        c = s[-1]
        if c in _GAP_VALUE_END:  # a string or bracket group that _CODE_SKIP jumped over
            return _VALUE, nl
        if c in IDENT_CHARS or (c > "\x7f" and c.isalnum()):
            j = len(s) - 1
            while j >= 0 and (s[j] in IDENT_CHARS or (s[j] > "\x7f" and s[j].isalnum())):
                j -= 1
            word = s[j + 1:]
            if word[0].isdigit() or word not in KEYWORDS or word in VALUE_WORDS:
                return _VALUE, nl
            return (_FOR if word == "for" else _OTHER), nl
        if c == "=":
            j = len(s) - 1
            while j >= 0 and s[j] in _OP_CHARS:
                j -= 1
            ops = _split_ops(s[j + 1:])
            return (_ASSIGN if ops and ops[-1] == "=" else _OTHER), nl
        return _OTHER, nl

    def ends_arrow(self, gap: int, q: int) -> bool:
        """Is the `>` at q the end of `=>` or `->` (operators are read left to right)?"""
        j = q
        while j > gap and self.text[j - 1] in _OP_CHARS:
            j -= 1
        return _split_ops(self.text[j:q + 1])[-1] in ("=>", "->")

    def style_block(self, q: int, gap: int) -> int:
        """At `{` or `(` right after the identifier `style`: the end of the CSS block it
        opens (recorded as a span), or 0."""
        text = self.text
        k = q
        while k > gap and text[k - 1] in " \t\r\n":
            k -= 1
        w = k - 5
        if w < gap or not text.startswith("style", w):
            return 0
        if w > 0 and (text[w - 1] in IDENT_CHARS or (text[w - 1] > "\x7f" and text[w - 1].isalnum())):
            return 0
        p = q
        if text[q] == "(":
            close = text.find(")", q)
            if close == -1:
                return 0
            p = _ws_end(text, close + 1)
            if not text.startswith("{", p):
                return 0
        depth = 0
        while True:
            m = _CSS_STOP.search(text, p)
            if m is None:
                raise self.err("unterminated style block", w,
                               "the CSS in a style { } block must have balanced braces")
            p = m.end()
            depth += 1 if m.group() == "{" else -1
            if depth == 0:
                self._span(w, p, "style")
                return p

    def block_comment(self, start: int) -> int:
        depth = 0
        p = start
        search = _BLOCK_COMMENT.search
        while True:
            m = search(self.text, p)
            if not m:
                raise self.err("unterminated block comment", start,
                               "close it with */ (block comments nest: every /* needs its own */)")
            depth += 1 if m.group() == "/*" else -1
            p = m.end()
            if depth == 0:
                return p

    # -- strings --------------------------------------------------------------------------
    def _unterminated(self, start: int) -> TovaSyntaxError:
        return self.err("unterminated string", start,
                        'close it with the same quote; write \\{ for a literal "{" in "..." strings')

    def sq_string(self, start: int) -> int:
        m = _SQ.match(self.text, start)
        if not m:
            raise self._unterminated(start)
        return m.end()

    def dq_string(self, start: int) -> int:
        """`start` is at the opening quote of a "..." string; returns its end."""
        m = _SIMPLE_DQ.match(self.text, start)
        if m:
            return m.end()
        text, n = self.text, self.n
        p = start + 1
        while True:
            m = _DQ_STOP.search(text, p)
            if m is None:
                raise self._unterminated(start)
            p = m.start()
            c = text[p]
            if c == '"':
                return p + 1
            if c == "\\":
                if p + 1 >= n:
                    raise self._unterminated(start)
                p += 2
            else:
                p = self.interpolation(p, start)

    def triple_string(self, start: int) -> int:
        text, n = self.text, self.n
        p = start + 3
        while True:
            m = _DQ_STOP.search(text, p)
            if m is None:
                raise self.err("unterminated triple-quoted string", start, 'close it with """')
            p = m.start()
            c = text[p]
            if c == '"':
                if text.startswith('"""', p):
                    return p + 3
                p += 1
            elif c == "\\":
                if p + 1 >= n:
                    raise self.err("unterminated triple-quoted string", start, 'close it with """')
                p += 2
            else:
                p = self.interpolation(p, start)

    def interpolation(self, p: int, string_start: int) -> int:
        """`p` is at the `{` of an interpolation; returns the position after its `}`.
        The compiler counts braces and skips quoted literals inside; a "..." literal
        there counts its own braces (it may interpolate again)."""
        text, n = self.text, self.n
        depth = 1
        p += 1
        while True:
            m = _INTERP_STOP.search(text, p)
            if m is None:
                raise self.err(
                    "unterminated string interpolation", string_start,
                    "every { in a string opens an expression: close it with }, "
                    "or write \\{ for a literal brace",
                )
            p = m.start()
            c = text[p]
            if c == "{":
                depth += 1
                p += 1
            elif c == "}":
                depth -= 1
                p += 1
                if depth == 0:
                    return p
            else:
                p = self.nested_literal(p, c)
                if p >= n:
                    raise self.err(
                        "unterminated string interpolation", string_start,
                        "every { in a string opens an expression: close it with }, "
                        "or write \\{ for a literal brace",
                    )

    def nested_literal(self, p: int, quote: str) -> int:
        text, n = self.text, self.n
        stop = _NESTED_STOP[quote].search
        depth = 0
        p += 1
        while True:
            m = stop(text, p)
            if m is None:
                return n
            p = m.start()
            c = text[p]
            if c == "\\":
                p += 2
            elif c == "{":
                depth += 1
                p += 1
            elif c == "$":
                if text.startswith("{", p + 1):
                    depth += 1
                    p += 2
                else:
                    p += 1
            elif c == "}":
                if depth > 0:
                    depth -= 1
                p += 1
            elif depth == 0:  # the closing quote
                return p + 1
            else:
                p += 1


def _ws_end(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos  # _WS matches the empty string: m is never None


def _is_alpha(ch: str) -> bool:
    if not ch:
        return False
    if ch < "\x80":
        return ch.isalpha() or ch == "_" or ch == "$"
    return ch <= "\uffff" and unicodedata.category(ch)[0] == "L"


def _split_ops(run: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(run):
        for op in _OPS:
            if run.startswith(op, i):
                out.append(op)
                i += len(op)
                break
        else:
            out.append(run[i])
            i += 1
    return out


# -- pass 2 -------------------------------------------------------------------------------

Tok = tuple[str, int, int]


def tokens(sc: Scanned, a: int, b: int, collapse: bool = True) -> tuple[list[Tok], dict[int, int]]:  # noqa: C901 - hot path, one loop
    """Tokens of text[a:b], a region holding no unmatched bracket. With `collapse`,
    each nested `{ }` group is just its two braces (the reader looks inside the few
    groups it needs with another call). Returns the tokens and, for every opening
    bracket token, the index of its closing one."""
    text = sc.text
    starts, ends, kinds, braces = sc.starts, sc.ends, sc.kinds, sc.closes
    toks: list[Tok] = []
    closes: dict[int, int] = {}
    stack: list[int] = []
    nspans = len(starts)
    si = bisect_left(starts, a)
    pos = a
    match = _GAP_TOKEN.match
    while pos < b:
        stop = starts[si] if si < nspans and starts[si] < b else b
        while True:
            m = match(text, pos, stop)
            if m is None:  # pass 1 lets nothing else through; never loop on it
                raise sc.error("cannot read this", pos, "report this file to the toolkit's authors")
            kind = m.lastgroup
            if kind == "eof":
                pos = stop
                break
            s, e = m.span(kind)  # type: ignore[arg-type]
            if kind == "punct":
                ch = text[s]
                if ch == "{":
                    close = braces[s]
                    if collapse:
                        stack.append(len(toks))
                        toks.append(("{", s, e))
                        closes[stack.pop()] = len(toks)
                        toks.append(("}", close, close + 1))
                        pos = close + 1
                        si = bisect_left(starts, pos)
                        break
                    stack.append(len(toks))
                    toks.append(("{", s, e))
                    pos = e
                    continue
                if ch in "([":
                    stack.append(len(toks))
                elif ch in ")]}" and stack:  # (a bracket may hide in a markup span)
                    closes[stack.pop()] = len(toks)
                toks.append((ch, s, e))
            else:
                toks.append((kind, s, e))  # type: ignore[arg-type]
            pos = e
        if pos >= b:
            break
        if si < nspans and starts[si] == pos:
            if kinds[si] != "comment":
                toks.append((kinds[si], pos, ends[si]))
            pos = ends[si]
            si += 1
    return toks, closes


# -- convenience for tests and tools --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    start: int
    end: int
    line: int
    col: int


def tokenize(text: str, path: str = "<input>") -> list[Token]:
    """Every token of a file (nothing collapsed), with line and column."""
    sc = scan(text, path)
    toks, _ = tokens(sc, sc.start, len(text), collapse=False)
    out = []
    for kind, s, e in toks:
        line, col = sc.line_col(s)
        out.append(Token(kind, text[s:e], s, e, line, col))
    return out


# -- string values --------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "{": "{", "}": "}"}
_ESC_OR_BRACE = re.compile(r"\\([\s\S])|(\{)")


def string_value(src: str) -> str | None:
    """Decode the source text of a "str" token. None when it interpolates (`{...}`)."""
    if src.startswith('r"'):
        return src[2:-1]
    if src.startswith('f"'):
        src = src[1:]
    if src.startswith('"""'):
        body = src[3:-3]
        if body.startswith("\r\n"):
            body = body[2:]
        elif body.startswith("\n"):
            body = body[1:]
        value = _decode(body, interpolates=True)
        return None if value is None else _dedent(value)
    if src.startswith("'"):
        return _decode(src[1:-1], interpolates=False)
    return _decode(src[1:-1], interpolates=True)


def _decode(body: str, interpolates: bool) -> str | None:
    if "\\" not in body and "{" not in body:
        return body
    out: list[str] = []
    last = 0
    for m in _ESC_OR_BRACE.finditer(body):
        if m.group(2) is not None:
            if interpolates:
                return None
            continue
        out.append(body[last : m.start()])
        ch = m.group(1)
        out.append(_ESCAPES.get(ch, "\\" + ch))
        last = m.end()
    out.append(body[last:])
    return "".join(out)


def _dedent(text: str) -> str:
    """The Tova lexer's dedent for triple-quoted strings."""
    if text.endswith("\n"):
        text = text[:-1]
    else:
        nl = text.rfind("\n")
        if nl != -1 and not text[nl + 1 :].strip():
            text = text[:nl]
    lines = text.split("\n")
    indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()]
    cut = min(indents) if indents else 0
    return "\n".join("" if not ln.strip() else ln[cut:] for ln in lines)
