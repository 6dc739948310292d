"""A hand-written lexer for Tova that knows exactly enough to never lose its place:
strings with nested interpolation, raw/single/triple strings, nested block comments,
regex-vs-division, style blocks and JSX markup (see docs/tova-syntax.md, section 1).

Speed matters (a 1.5 MB project must read in well under a second), so ordinary text is
consumed by compiled regexes, tokens are plain tuples `(kind, start, end)` and line/col
are computed only when somebody asks for them.

Token kinds: "name", "num", "str", "regex", "jsx", "style", "op", and the punctuation
characters themselves: "{", "}", "(", ")", "[", "]", ",", ";".  Strings, regexes, JSX
elements and style blocks are opaque single tokens: nothing inside them can be a block.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from tova.errors import Location, TovaSyntaxError

# Keywords of the Tova lexer: none of them ends a value, so `/` after one starts a regex
# and `<` after one starts markup. (`true false nil` are values and are not listed.)
NON_VALUE_WORDS = frozenset(
    """var let fn return if elif else for while match type import from export as and or
    not in break continue try catch finally async await guard interface derive pub impl
    trait defer mut yield loop when extern is with server client browser shared route
    state computed effect component store""".split()
)

# Opaque-ish nesting (strings in markup in strings...) recurses; cap it so hostile input
# gives a syntax error instead of a RecursionError.
MAX_DEPTH = 64

# One match per token; leading whitespace rides along with the token it precedes.
_TOKEN = re.compile(
    r"""\s*(?:
    (?P<name>[^\W\d]\w*)
   |(?P<punct>[{}()\[\],;])
   |(?P<op>\.\.\.|\.\.=|\.\.|=>|->|==|!=|<=|>=|&&|\|\||\|>|::|\?\.|\?\?|\*\*
           |[-+*%=!&|^~?.:@$]=?)
   |(?P<s1>"(?![\"])[^"\\{]*")
   |(?P<dq>")
   |(?P<num>0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
            |\d[\d_]*(?:\.(?=[\d_])[\d_]*)?(?:[eE][+-]?\d+)?)
   |(?P<lc>//[^\n]*)
   |(?P<bc>/\*)
   |(?P<slash>/)
   |(?P<sq>'(?:[^'\\]|\\[\s\S])*')
   |(?P<lt><)
   |(?P<other>[\s\S])
   |(?P<eof>\Z)
    )""",
    re.VERBOSE,
)

_STR_RUN = re.compile(r'[^"\\{]*')
_TRI_RUN = re.compile(r'[^"\\{]*')
_INTERP_RUN = re.compile(r"""[^"'{}]*""")
_SQ = re.compile(r"'(?:[^'\\]|\\[\s\S])*'")
_BLOCK_COMMENT = re.compile(r"/\*|\*/")
_REGEX = re.compile(r"/(?:\\[^\n]|\[(?:\\[^\n]|[^\]\\\n])*\]|[^/\\\[\n])*/[gimsuydv]*")
_STYLE_HEAD = re.compile(r"\s*(?:\([^()]{0,500}\)\s*)?\{")
_CSS_RUN = re.compile(r"[^{}]*")
_NL = re.compile(r"\n")

# Markup.
_TAG_NAME = re.compile(r"[\w\-.:]*")
_TAG_ATTR = re.compile(
    r"""\s*(?:(?P<sc>/>)|(?P<gt>>)|(?P<dq>")|(?P<sq>')|(?P<lb>\{)|(?P<word>[^\s/>{}"'=]+)|(?P<other>[\s\S]))"""
)
_CHILD_SPECIAL = re.compile(r"""[{}"'<]|(?<=[\s}"'{])(?:if|for|elif|else|match)\b""")
_CF_KEYWORD = re.compile(r"(?:if|for|elif|else|match)\b")
_CLOSE_TAG = re.compile(r"</\s*([\w\-.:]*)\s*>")


def _always(pattern: re.Pattern[str]) -> Callable[[str, int], re.Match[str]]:
    """`pattern.match` for a pattern that matches everywhere (it can match the empty string,
    or the caller has just seen its text), typed as never returning None."""
    return cast(Callable[[str, int], re.Match[str]], pattern.match)


_match_token = _always(_TOKEN)  # _TOKEN ends with a catch-all alternative
_VOID_TAGS = frozenset(
    "area base br col embed hr img input link meta source track wbr".split()
)

_PAIRS = {")": "(", "]": "[", "}": "{"}
_VALUE_KINDS = frozenset({"num", "str", ")", "]", "}"})


@dataclass(frozen=True, slots=True)
class Token:
    """A token with its position, for callers that want one object per token."""

    kind: str
    text: str
    start: int
    end: int
    line: int
    col: int


class Lexed:
    """The token stream of one file: `toks` holds `(kind, start, end)` tuples and
    `closes` maps the index of every opening bracket token to its closing one."""

    __slots__ = ("text", "path", "toks", "closes", "_nl")

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.toks: list[tuple[str, int, int]] = []
        self.closes: dict[int, int] = {}
        self._nl: list[int] | None = None

    def _newlines(self) -> list[int]:
        if self._nl is None:
            self._nl = [m.start() for m in _NL.finditer(self.text)]
        return self._nl

    def line_col(self, pos: int) -> tuple[int, int]:
        nl = self._newlines()
        idx = bisect_left(nl, pos)
        line_start = nl[idx - 1] + 1 if idx else 0
        return idx + 1, pos - line_start + 1

    def loc(self, pos: int) -> Location:
        line, col = self.line_col(pos)
        return Location(self.path, line, col)

    def line_text(self, pos: int) -> str:
        start = self.text.rfind("\n", 0, pos) + 1
        end = self.text.find("\n", pos)
        return self.text[start : end if end != -1 else len(self.text)]

    def tok_text(self, i: int) -> str:
        _, s, e = self.toks[i]
        return self.text[s:e]

    def error(self, message: str, pos: int, hint: str | None = None) -> TovaSyntaxError:
        pos = min(max(pos, 0), len(self.text))
        return TovaSyntaxError(
            message, hint=hint, loc=self.loc(pos), source_line=self.line_text(pos)
        )

    def tokens(self) -> list[Token]:
        out = []
        for kind, s, e in self.toks:
            line, col = self.line_col(s)
            out.append(Token(kind, self.text[s:e], s, e, line, col))
        return out


def lex(text: str, path: str = "<input>") -> Lexed:
    """Tokenize one file; raises TovaSyntaxError for unterminated or unbalanced input."""
    lexed = Lexed(text, path)
    _Scanner(lexed).run()
    return lexed


def tokenize(text: str, path: str = "<input>") -> list[Token]:
    return lex(text, path).tokens()


class _Scanner:
    def __init__(self, lexed: Lexed) -> None:
        self.lx = lexed
        self.text = lexed.text
        self.n = len(lexed.text)

    def run(self) -> None:
        pos = 0
        if self.text.startswith("#!"):
            nl = self.text.find("\n")
            pos = self.n if nl == -1 else nl + 1
        self.code(pos, self.lx.toks, self.lx.closes, None, False, 0)

    # -- errors -------------------------------------------------------------------
    def err(self, message: str, pos: int, hint: str | None = None) -> TovaSyntaxError:
        return self.lx.error(message, pos, hint)

    def _deeper(self, depth: int, pos: int) -> int:
        if depth >= MAX_DEPTH:
            raise self.err(
                "nesting too deep (strings, markup and braces inside each other)",
                pos,
                "split the expression into smaller pieces",
            )
        return depth + 1

    # -- code ---------------------------------------------------------------------
    def code(  # noqa: C901
        self,
        pos: int,
        toks: list[tuple[str, int, int]],
        closes: dict[int, int],
        open_pos: int | None,
        in_jsx: bool,
        depth: int,
    ) -> int:
        """Lex code from `pos` into `toks`. With `open_pos` set (an expression inside
        markup), stop after the `}` closing the `{` at open_pos and return the position
        after it. Only this call appends to `toks`, so `toks[-1]` is the previous
        significant token, which decides regex-vs-division and markup-vs-less-than."""
        text = self.text
        match = _match_token
        append = toks.append
        stack: list[int] = []
        while True:
            m = match(text, pos)
            kind = cast(str, m.lastgroup)  # every alternative of _TOKEN is a named group
            pos, end = m.span(kind)
            if kind == "name":
                size = end - pos
                if size == 1 and text.startswith('"', end) and text[pos] in "rf":
                    if text[pos] == "r":
                        close = text.find('"', end + 1)
                        if close == -1:
                            raise self.err(
                                "unterminated raw string", pos,
                                'a raw string r"..." ends at the next "',
                            )
                        end = close + 1
                    else:
                        end = self.dq_string(end, depth)
                    append(("str", pos, end))
                elif size == 5 and text.startswith("style", pos) and (
                    head := _STYLE_HEAD.match(text, end)
                ):
                    end = self.css(head.end() - 1, pos)
                    append(("style", pos, end))
                else:
                    append(("name", pos, end))
            elif kind == "punct":
                ch = text[pos]
                if ch in "{([":
                    stack.append(len(toks))
                    append((ch, pos, end))
                elif ch in "})]":
                    if not stack:
                        if open_pos is not None and ch == "}":
                            return end
                        raise self.err(
                            f"unexpected '{ch}' with nothing open", pos,
                            "remove it, or add the opening bracket it belongs to",
                        )
                    o = stack.pop()
                    if toks[o][0] != _PAIRS[ch]:
                        ol, oc = self.lx.line_col(toks[o][1])
                        raise self.err(
                            f"'{ch}' does not match '{toks[o][0]}' opened at line {ol}, col {oc}",
                            pos,
                            "check the brackets between these two places",
                        )
                    closes[o] = len(toks)
                    append((ch, pos, end))
                else:
                    append((ch, pos, end))
            elif kind == "op":
                append(("op", pos, end))
            elif kind == "s1" or kind == "sq":
                append(("str", pos, end))
            elif kind == "dq":
                if text.startswith('"""', pos):
                    end = self.triple_string(pos, depth)
                else:
                    end = self.dq_string(pos, depth)
                append(("str", pos, end))
            elif kind == "num":
                append(("num", pos, end))
            elif kind == "lc":
                pass
            elif kind == "bc":
                end = self.block_comment(pos)
            elif kind == "slash":
                nxt = text[end : end + 1]
                if toks:
                    regex_ok = not self.prev_is_value(toks)
                else:  # first token of a file: a regex only if it cannot be anything else
                    regex_ok = nxt != "" and not nxt.isspace()
                if regex_ok and not in_jsx and nxt != "=":
                    rm = _REGEX.match(text, pos)
                    if not rm:
                        raise self.err(
                            "unterminated regex literal", pos,
                            "a regex /.../ must end on the same line; write `a / b` "
                            "with a value before `/` for division",
                        )
                    end = rm.end()
                    append(("regex", pos, end))
                else:
                    if nxt == "=":
                        end += 1
                    append(("op", pos, end))
            elif kind == "lt":
                nxt = text[end : end + 1]
                if (nxt.isalpha() or nxt == "_") and not (toks and self.prev_is_value(toks)):
                    end = self.jsx(pos, self._deeper(depth, pos))
                    append(("jsx", pos, end))
                else:
                    if nxt == "=":
                        end += 1
                    append(("op", pos, end))
            elif kind == "eof":
                break
            else:  # other: a character that can start nothing
                c = text[pos]
                if c == "'":
                    raise self._unterminated(pos)
                if c == "#":
                    raise self.err(
                        "'#' is not allowed here", pos,
                        "Tova comments start with // (only a first-line #! is allowed)",
                    )
                append(("op", pos, end))
            pos = end
        if stack:
            opener = toks[stack[-1]]
            closer = {"{": "}", "(": ")", "[": "]"}[opener[0]]
            raise self.err(
                f"'{opener[0]}' is never closed", opener[1],
                f"add the matching '{closer}' before the end of the file",
            )
        if open_pos is not None:
            raise self.err(
                "'{' is never closed", open_pos,
                "add the matching '}' before the end of the file",
            )
        return pos

    def prev_is_value(self, toks: list[tuple[str, int, int]]) -> bool:
        """Does the last token end a value (identifier, literal, `)`, `]`, `}`)?"""
        kind, s, e = toks[-1]
        if kind == "name":
            return self.text[s:e] not in NON_VALUE_WORDS
        return kind in _VALUE_KINDS

    # -- strings --------------------------------------------------------------------
    def _unterminated(self, start: int) -> TovaSyntaxError:
        return self.err(
            "unterminated string", start,
            'close it with the same quote; write \\{ for a literal "{" in "..." strings',
        )

    def dq_string(self, start: int, depth: int) -> int:
        """`start` is at the opening quote of a "..." string; returns the end."""
        text, n = self.text, self.n
        run = _always(_STR_RUN)
        p = start + 1
        while True:
            p = run(text, p).end()
            if p >= n:
                raise self._unterminated(start)
            c = text[p]
            if c == '"':
                return p + 1
            if c == "\\":
                if p + 1 >= n:
                    raise self._unterminated(start)
                p += 2
            else:
                p = self.interpolation(p, start, depth)

    def triple_string(self, start: int, depth: int) -> int:
        text, n = self.text, self.n
        run = _always(_TRI_RUN)
        p = start + 3
        while True:
            p = run(text, p).end()
            if p >= n:
                raise self.err(
                    "unterminated triple-quoted string", start, 'close it with """'
                )
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
                p = self.interpolation(p, start, depth)

    def interpolation(self, p: int, string_start: int, depth: int) -> int:
        """`p` is at the `{` of an interpolation; returns the position after its `}`.
        Braces are counted; strings inside are skipped whole, and a "..." string there
        may interpolate again (its own braces never count here)."""
        text, n = self.text, self.n
        depth = self._deeper(depth, p)
        braces = 1
        p += 1
        run = _always(_INTERP_RUN)
        while True:
            p = run(text, p).end()
            if p >= n:
                raise self.err(
                    "unterminated string interpolation", string_start,
                    "every { in a string opens an expression: close it with }, "
                    "or write \\{ for a literal brace",
                )
            c = text[p]
            if c == "{":
                braces += 1
                p += 1
            elif c == "}":
                braces -= 1
                p += 1
                if braces == 0:
                    return p
            elif c == "'":
                p = self.sq_string(p)
            elif text.startswith('"""', p):
                p = self.triple_string(p, depth)
            else:
                p = self.dq_string(p, depth)

    def sq_string(self, start: int) -> int:
        m = _SQ.match(self.text, start)
        if not m:
            raise self._unterminated(start)
        return m.end()

    # -- comments, css ------------------------------------------------------------------
    def block_comment(self, start: int) -> int:
        depth = 0
        p = start
        search = _BLOCK_COMMENT.search
        while True:
            m = search(self.text, p)
            if not m:
                raise self.err(
                    "unterminated block comment", start,
                    "close it with */ (block comments nest: every /* needs its own */)",
                )
            depth += 1 if m.group() == "/*" else -1
            p = m.end()
            if depth == 0:
                return p

    def css(self, p: int, start: int) -> int:
        """`p` is at the `{` of a style block: CSS is counted by braces only."""
        text, n = self.text, self.n
        depth = 0
        while True:
            p = _always(_CSS_RUN)(text, p).end()
            if p >= n:
                raise self.err(
                    "unterminated style block", start,
                    "the CSS in a style { } block must have balanced braces",
                )
            depth += 1 if text[p] == "{" else -1
            p += 1
            if depth == 0:
                return p

    # -- markup --------------------------------------------------------------------
    def _unterminated_jsx(self, start: int) -> TovaSyntaxError:
        return self.err(
            "unterminated markup element", start,
            "close every <tag> with </tag> or write <tag />; quote prose: <p>\"text\"</p>",
        )

    def expr_in_markup(self, p: int, depth: int) -> int:
        """`p` is at a `{` inside markup: lex code up to its matching `}`."""
        return self.code(p + 1, [], {}, p, True, self._deeper(depth, p))

    def tag(self, p: int, depth: int, start: int) -> tuple[int, str, bool]:
        """`p` is at `<` of an opening tag; returns (end, name, self_closing)."""
        text = self.text
        nm = _always(_TAG_NAME)(text, p + 1)
        name = nm.group()
        p = nm.end()
        while True:
            m = _TAG_ATTR.match(text, p)
            if not m:
                raise self._unterminated_jsx(start)
            kind = cast(str, m.lastgroup)  # every alternative is a named group
            if kind == "gt":
                return m.end(), name, False
            if kind == "sc":
                return m.end(), name, True
            q = m.start(kind)
            if kind == "dq":
                p = self.dq_string(q, depth)
            elif kind == "sq":
                p = self.sq_string(q)
            elif kind == "lb":
                p = self.expr_in_markup(q, depth)
            else:
                p = m.end()

    def cf_header(self, p: int, depth: int, start: int) -> tuple[int, bool]:  # noqa: C901
        """Control flow inside markup (`if x {`, `for a in b {`, `match v {`): lex the
        header as code up to the `{` that opens its body; return (after `{`, is_match)."""
        text, n = self.text, self.n
        kw = _always(_CF_KEYWORD)(text, p).group()  # the caller saw the keyword here
        p += len(kw)
        paren = 0
        prev = kw
        while True:
            m = _TOKEN.match(text, p)
            if m is None:
                raise self._unterminated_jsx(start)
            kind = cast(str, m.lastgroup)  # every alternative of _TOKEN is a named group
            p, end = m.span(kind)
            if kind == "lc":
                p = end
                continue
            if kind == "eof":
                raise self._unterminated_jsx(start)
            tok = m.group(kind)
            if kind == "bc":
                end = self.block_comment(p)
            elif kind == "dq":
                end = self.triple_string(p, depth) if text.startswith('"""', p) else self.dq_string(p, depth)
            elif kind == "punct":
                if tok in "([":
                    paren += 1
                elif tok in ")]":
                    paren -= 1
                elif tok == "{":
                    if paren > 0 or prev in ("=", "for"):
                        end = self.expr_in_markup(p, depth)
                    else:
                        return end, kw == "match"
                elif tok == "}":
                    raise self._unterminated_jsx(start)
            prev = tok
            p = end
            if p >= n:
                raise self._unterminated_jsx(start)

    def jsx(self, start: int, depth: int) -> int:  # noqa: C901
        """`start` is at the `<` of an element; returns the position after it."""
        text, n = self.text, self.n
        p, name, self_closing = self.tag(start, depth, start)
        if self_closing or name in _VOID_TAGS:
            return p
        frames: list[str | None] = [name]  # tag names; None for a control-flow body
        special = _CHILD_SPECIAL.search
        while True:
            if _CF_KEYWORD.match(text, p):
                p, is_match = self.cf_header(p, depth, start)
                if is_match:
                    p = self.code(p, [], {}, p - 1, True, self._deeper(depth, p))
                else:
                    frames.append(None)
                continue
            m = special(text, p)
            if not m:
                raise self._unterminated_jsx(start)
            q = m.start()
            c = text[q]
            if c == "{":
                p = self.expr_in_markup(q, depth)
            elif c == '"':
                p = self.triple_string(q, depth) if text.startswith('"""', q) else self.dq_string(q, depth)
            elif c == "'":
                p = self.sq_string(q)
            elif c == "}":
                if frames[-1] is None:
                    frames.pop()
                p = q + 1
            elif c == "<":
                nxt = text[q + 1 : q + 2]
                if nxt == "/":
                    cm = _CLOSE_TAG.match(text, q)
                    if not cm:
                        p = q + 1
                        continue
                    p = cm.end()
                    closing = cm.group(1)
                    if closing in frames:
                        while frames and frames.pop() != closing:
                            pass
                    elif not closing and "" in frames:  # </> closes a fragment
                        while frames and frames.pop() != "":
                            pass
                    if not frames:
                        return p
                elif nxt.isalpha() or nxt == "_" or nxt == ">":
                    p, child, sc = self.tag(q, depth, start)
                    if not sc and child not in _VOID_TAGS:
                        frames.append(child)
                else:
                    p = q + 1
            else:  # a control-flow keyword after whitespace
                p = q
            if p >= n and frames:
                raise self._unterminated_jsx(start)


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
