"""Read one .tova file into its top-level blocks and the few facts that imply
infrastructure (see tova/lang/program.py).

Pass 1 (tova.lang.lexer.scan) finds every string, comment, regex, style block and markup
text and the matching `}` of every `{`, deciding as the compiler's lexer does. The reader
then tokenizes only what it looks at: the top level (block bodies collapsed), and inside
the blocks that matter, one `{ }` group at a time. Block detection follows the
compiler's block registry (which word, followed by what, opens a block).
"""

from __future__ import annotations

import gc
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tova.errors import Location, TovaSyntaxError
from tova.frozen import quick_init
from tova.lang.lexer import IDENT_CHARS, NON_VALUE_WORDS, Scanned, outside_bmp, scan, string_value, tokens
from tova.lang.program import (
    AuthDecl,
    Body,
    BrowserBlock,
    DataBlock,
    DataSource,
    DbDecl,
    DeployBlock,
    Field,
    RouteDecl,
    SecurityBlock,
    ServerBlock,
    SseDecl,
    SubBlock,
    Value,
)

# How the compiler's registry recognises a top-level block: the word, and what may follow.
_KEYWORD_BLOCKS = {"server": "server", "browser": "browser", "client": "browser", "shared": "shared"}
_BRACE_BLOCKS = {"security", "data", "cli", "theme", "auth"}  # word then `{`
_NAMED_BLOCKS = {"test", "bench", "edge"}  # word then `{` or a string
_CONCURRENT_MODES = {"cancel_on_error", "first", "timeout"}
_BLOCK_WORDS = frozenset({*_KEYWORD_BLOCKS, *_BRACE_BLOCKS, *_NAMED_BLOCKS, "deploy", "concurrent"})
# A block word that no identifier character follows (the search starts with the words
# themselves, so that the regex engine skips ahead by their first letters).
_BLOCK_WORD = re.compile(rf"(?:{'|'.join(sorted(_BLOCK_WORDS))})(?![^{outside_bmp('A-Za-z0-9_$')}])")
_NUMBER_START = frozenset("0123456789")
_OPERATOR_CHARS = frozenset("=.,;:)]}([+-*%<>!&|?^~@")
_WS = re.compile(r"[ \t\r\n]*")


def _may_come_next(word: str, ch: str) -> bool:
    """Can `ch` be the next character (after spaces) when `word` opens a block, or makes
    block_at report a misspelt one? After anything else the word is a plain name."""
    if word in _BRACE_BLOCKS:
        return ch in "{/"  # the body, or a comment before it
    if word in _NAMED_BLOCKS:
        return ch in "{/\"'rf"  # ... or the name's string
    if word in _KEYWORD_BLOCKS:
        return True  # keywords: any other use is an error block_at reports
    return ch not in _OPERATOR_CHARS  # deploy, concurrent: a name, a string or a `{`


def _first_block_word(sc: Scanned) -> int:
    """Where the first name token that might open a top-level block is, or -1. A file
    where none can (most library modules and snippets) need not have its top level
    tokenized, nor the part of it before that place. Block words inside groups are not
    told apart here: this may answer too early, never too late."""
    text, start = sc.text, sc.start
    for m in _BLOCK_WORD.finditer(text, start):
        p = m.start()
        if sc.span_at(p) != -1:
            continue  # in a string, a comment...
        if p == start or not _is_ident_char(text[p - 1]):
            if p > start and text[p - 1] == ".":
                continue  # a member (`re.test(s)`): no statement starts after an operator
            after = _WS.match(text, m.end()).end()  # type: ignore[union-attr]
            if after < len(text) and not _may_come_next(m.group(), text[after]):
                continue  # `data = ...`: a plain name
            return p
        # Inside an identifier, unless that identifier run is a number's (`1_data` is
        # `1_` then `data`). Long runs are not walked: here, then.
        j = p - 1
        while j > start and _is_ident_char(text[j - 1]):
            j -= 1
            if p - j > 64:
                return p
        if text[j] in _NUMBER_START:
            return p
    return -1


def _top_level_from(sc: Scanned, first: int) -> int:
    """Where to start tokenizing the top level, when no block word comes before `first`:
    right after the last top-level `{ }` group that closes before it (a `}` ends an item,
    so a statement may start there, as after anything else), else at the file's start."""
    opens = sc.top_opens
    i = bisect_left(opens, first) - 1
    if i >= 0 and sc.closes[opens[i]] > first:
        i -= 1  # `first` is inside this group: the one before it closes earlier
    return sc.closes[opens[i]] + 1 if i >= 0 else sc.start


def _is_ident_char(ch: str) -> bool:
    # (outside strings and comments, a character beyond ASCII can only be part of a name)
    return ch in IDENT_CHARS or ch > "\x7f"


_SERVER_WORDS = frozenset({"db", "ws", "sse", "routes", "route"})
_SECURITY_WORDS = frozenset({"auth", "cors"})
_DATA_WORDS = frozenset({"source"})

_BINARY_OPS = frozenset(
    "+ - * / % ** == != < > <= >= && || ?? |> .. ..= & | ^ =>".split()
)
_BINARY_WORDS = frozenset({"and", "or", "is", "in"})
# After a literal, these make it part of a longer expression.
_GOES_ON_OPS = _BINARY_OPS | {".", "?."}
_LITERAL_WORDS = frozenset({"true", "false", "nil"})
_PREFIX_OPS = frozenset({"-", "+", "!", "~", "..."})
_PREFIX_WORDS = frozenset({"not", "await"})
# Token kinds after which a new statement may begin (besides non-keyword names).
_STATEMENT_AFTER = frozenset({";", "}", ")", "]", "str", "num", "regex", "text", "style", "markup"})
# Deeper than this, sub-blocks and arrays of a deploy body are surely not configuration.
_MAX_DEPTH = 32
# Options a route group may have between its prefix and its body.
_ROUTE_OPTIONS = {"version", "deprecated", "sunset"}


@quick_init
@dataclass(frozen=True)
class TopBlock:
    """A top-level block as the compiler's parser sees it: kind, name, place."""

    kind: str
    name: str | None
    loc: Location


@quick_init
@dataclass(frozen=True)
class ParsedFile:
    """The blocks of one file, in source order."""

    path: str
    line_count: int
    deploys: tuple[DeployBlock, ...] = ()
    servers: tuple[ServerBlock, ...] = ()
    browsers: tuple[BrowserBlock, ...] = ()
    securities: tuple[SecurityBlock, ...] = ()
    datas: tuple[DataBlock, ...] = ()
    blocks: tuple[TopBlock, ...] = ()


def parse_source(text: str, path: str) -> ParsedFile:
    """Parse one file's text. Raises TovaSyntaxError (with location) and nothing else."""
    if not gc.isenabled():
        return _FileReader(scan(text, path)).read()
    # The reader makes many small objects (tokens, spans, values) and no reference
    # cycles: the cyclic collector's passes over them find nothing and took ~20% of the
    # time on a 2 MB file. Reference counting still frees everything; the collector
    # runs again as soon as this returns.
    gc.disable()
    try:
        return _FileReader(scan(text, path)).read()
    finally:
        gc.enable()


def count_lines(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


# -- one region: the tokens of the top level or of one { } group -------------------------


class _Region:
    def __init__(self, sc: Scanned, a: int, b: int, collapse: bool = True) -> None:
        self.sc = sc
        self.text = sc.text
        self.toks, self.closes = tokens(sc, a, b, collapse)
        self.end = b

    def inner(self, open_i: int, collapse: bool = True) -> _Region:
        """The region inside the `{ }` group whose `{` is token open_i (with `collapse`
        False, nested groups are tokenized too: for small bodies read all the way down)."""
        return _Region(self.sc, self.toks[open_i][2], self.toks[self.closes[open_i]][1], collapse)

    def starts(self, words: frozenset[str]) -> Iterator[int]:
        """Indexes of the tokens of this level that are one of `words` and begin a
        statement (the walks' hot loop: plain locals, no per-item calls)."""
        toks, closes, text = self.toks, self.closes, self.text
        n = len(toks)
        i, prev = 0, -1
        while i < n:
            k, s, e = toks[i]
            if k == "name" and text[s:e] in words and (prev < 0 or self.stmt_start(prev, i)):
                yield i
            c = closes.get(i)
            prev = i if c is None else c
            i = prev + 1

    # token helpers ----------------------------------------------------------------
    def kind(self, i: int) -> str:
        return self.toks[i][0]

    def src(self, i: int) -> str:
        _, s, e = self.toks[i]
        return self.text[s:e]

    def is_name(self, i: int, limit: int, word: str | None = None) -> bool:
        if i >= limit or self.toks[i][0] != "name":
            return False
        return word is None or self.src(i) == word

    def is_op(self, i: int, limit: int, op: str) -> bool:
        return i < limit and self.toks[i][0] == "op" and self.src(i) == op

    def after(self, i: int) -> int:
        """Index of the token after the item starting at i (a group counts as one)."""
        close = self.closes.get(i)
        return (close if close is not None else i) + 1

    def loc(self, i: int) -> Location:
        return self.sc.loc(self.toks[i][1])

    def error(self, message: str, i: int, hint: str) -> TovaSyntaxError:
        pos = self.toks[i][1] if i < len(self.toks) else self.end
        return self.sc.error(message, pos, hint)

    def newline_between(self, a: int, b: int) -> bool:
        return self.text.find("\n", self.toks[a][2], self.toks[b][1]) != -1

    def stmt_start(self, prev: int | None, i: int) -> bool:
        """Does token i begin a statement, given the previous item's last token?
        Layout does not matter in Tova: a statement starts after `;`, after a closing
        brace, or right after a complete value (`x = 1 deploy "p" {` is two statements),
        but never after an operator or a keyword such as `if` (`if data {`)."""
        if prev is None:
            return True
        pk = self.toks[prev][0]
        if pk == "name":
            return self.src(prev) not in NON_VALUE_WORDS
        return pk in _STATEMENT_AFTER


class _FileReader:
    def __init__(self, sc: Scanned) -> None:
        self.sc = sc

    def read(self) -> ParsedFile:
        sc = self.sc
        first = _first_block_word(sc)
        if first < 0:
            return ParsedFile(path=sc.path, line_count=count_lines(sc.text))
        top = _Region(sc, _top_level_from(sc, first), len(sc.text))
        out: dict[str, list[Any]] = {"deploy": [], "server": [], "browser": [], "security": [], "data": []}
        blocks: list[TopBlock] = []
        n = len(top.toks)
        for i in top.starts(_BLOCK_WORDS):
            found = self.block_at(top, i, n)
            if found is None:
                continue
            kind, name, body = found
            loc = top.loc(i)
            blocks.append(TopBlock(kind, name, loc))
            if kind == "browser":  # nothing inside a browser block implies infrastructure
                out[kind].append(BrowserBlock(name=name, loc=loc))
            elif kind == "deploy":
                assert name is not None
                out[kind].append(DeployBlock(name=name, loc=loc,
                                             body=_group_body(top, body, strict=True, commas=False)))
            elif kind in out:
                out[kind].append(self.read_block(kind, loc, name, top.inner(body)))
        return ParsedFile(
            path=sc.path,
            line_count=count_lines(sc.text),
            deploys=tuple(out["deploy"]),
            servers=tuple(out["server"]),
            browsers=tuple(out["browser"]),
            securities=tuple(out["security"]),
            datas=tuple(out["data"]),
            blocks=tuple(blocks),
        )

    def block_at(self, r: _Region, i: int, n: int) -> tuple[str, str | None, int] | None:  # noqa: C901 - the registry's table
        """(kind, name, index of the body's `{`) when the word at i opens a top-level
        block the way the compiler's registry detects them; None otherwise."""
        word = r.src(i)
        nxt = i + 1
        kind_next = r.kind(nxt) if nxt < n else ""
        if word in _KEYWORD_BLOCKS:
            name = None
            if kind_next == "str":
                name = self.block_name(r, nxt)
                nxt += 1
            if nxt < n and r.kind(nxt) == "{":
                return _KEYWORD_BLOCKS[word], name, nxt
            raise r.error(f"'{word}' must be followed by a block", nxt,
                          f'write {word} {{ ... }} or {word} "name" {{ ... }}')
        if word in _BRACE_BLOCKS:
            return (word, None, nxt) if kind_next == "{" else None
        if word in _NAMED_BLOCKS or word == "deploy":
            if kind_next == "{" and word != "deploy":
                return word, None, nxt
            if kind_next != "str":
                if word == "deploy" and kind_next == "{":
                    raise r.error("a deploy block needs a name", nxt,
                                  'name the environment: deploy "prod" { ... }')
                if word == "deploy" and kind_next == "name" and nxt + 1 < n and r.kind(nxt + 1) == "{":
                    raise r.error("a deploy block name must be a quoted string", nxt,
                                  f'write deploy "{r.src(nxt)}" {{ ... }}')
                return None
            name = self.block_name(r, nxt)
            nxt += 1
            if word == "test" and r.is_name(nxt, n, "timeout") and r.is_op(nxt + 1, n, "="):
                if nxt + 2 >= n or r.kind(nxt + 2) != "num":
                    raise r.error("expected a number after timeout=", nxt + 2, "write timeout=5000")
                nxt += 3
            if nxt < n and r.kind(nxt) == "{":
                return word, name, nxt
            raise r.error(f"expected '{{' after the {word} block's name", nxt,
                          f'write {word} "{name}" {{ ... }}')
        if word == "concurrent":
            if kind_next == "{":
                return word, None, nxt
            if kind_next == "name" and r.src(nxt) in _CONCURRENT_MODES:
                nxt += 1
                if r.src(nxt - 1) == "timeout" and nxt < n and r.kind(nxt) == "(":
                    nxt = r.after(nxt)
                if nxt < n and r.kind(nxt) == "{":
                    return word, None, nxt
                raise r.error("expected '{' after 'concurrent'", nxt, "write concurrent { ... }")
        return None

    @staticmethod
    def block_name(r: _Region, i: int) -> str:
        name = string_value(r.src(i))
        if name is None:
            raise r.error("a block name must be a plain string", i,
                          "remove the {...} interpolation from the name")
        return name

    def read_block(self, kind: str, loc: Location, name: str | None, body: _Region) -> object:
        if kind == "server":
            return _server(name, loc, body)
        if kind == "security":
            return _security(loc, body)
        return _data(loc, body)


# -- bodies of `key: value` fields (deploy blocks, db, cors) ------------------------------


def _body(r: _Region, lo: int, close: int, strict: bool, commas: bool,  # noqa: C901 - a rule per branch
          depth: int) -> Body:
    """Fields and sub-blocks of tokens lo..close of a region tokenized all the way down.

    strict (deploy blocks): every problem is a syntax error; commas between fields are
    allowed only when `commas`. Otherwise unreadable parts are skipped."""
    fields: list[Field] = []
    blocks: list[SubBlock] = []
    toks, text, sc_loc = r.toks, r.text, r.sc.loc
    i = lo
    while i < close:
        kind, s, e = toks[i]
        if kind == ";" or (kind == "," and (commas or not strict)):
            i += 1
            continue
        if kind == ",":
            raise r.error(
                "fields of a deploy block are not separated by commas", i,
                "put each field on its own line, or separate them with ';'",
            )
        if (kind == "name" or kind == "str") and i + 1 < close:
            key = text[s:e] if kind == "name" else string_value(text[s:e])
            nk, ns, ne = toks[i + 1]
            if key is not None and nk == "op" and text[ns:ne] == ":":
                loc = sc_loc(s)
                value = _literal(r, i + 2, close)
                if value is not None:  # the usual field, in one step
                    fields.append(Field(key=key, value=value, loc=loc))
                    i += 3
                    continue
                value, nxt = _value(r, i + 2, close, strict)
                if strict and nxt < close and r.kind(nxt) == "name" \
                        and r.toks[nxt][1] == r.toks[nxt - 1][2]:
                    raise r.error(
                        f"'{r.text[r.toks[i + 2][1]:r.toks[nxt][2]]}' is not a value", i + 2,
                        f'sizes and other text are strings: {key}: "{r.src(nxt - 1)}{r.src(nxt)}"',
                    )
                if value is not None:
                    fields.append(Field(key=key, value=value, loc=loc))
                    i = nxt
                    continue
            elif key is not None and kind == "name" and r.kind(i + 1) == "{":
                if depth >= _MAX_DEPTH:
                    raise r.error("blocks nested too deeply", i + 1, "flatten the configuration")
                loc = r.loc(i)  # (before the body's: locations are asked for in source order)
                sub = _body(r, i + 2, r.closes[i + 1], strict, True, depth + 1)
                blocks.append(SubBlock(name=key, loc=loc, body=sub))
                i = r.closes[i + 1] + 1
                continue
            elif strict and kind == "name":
                raise r.error(
                    f"field '{key}' needs ':' before its value", i + 1,
                    f'write {key}: "value"',
                )
        if strict:
            if kind == "name":  # a name right before the closing brace
                raise r.error(
                    f"field '{r.src(i)}' needs ':' and a value", i,
                    f'write {r.src(i)}: "value"',
                )
            raise r.error(
                f"expected a field name, found {r.src(i)[:30]!r}", i,
                'fields look like key: "value"',
            )
        i = _skip_statement(r, i, close)
    return Body(fields=tuple(fields), blocks=tuple(blocks))


def _group_body(r: _Region, open_i: int, strict: bool, commas: bool) -> Body:
    """The fields and sub-blocks inside the `{ }` group whose `{` is token open_i: in
    one regex step per field when every field is a plain `key: literal` or a sub-block
    of such (_plain_fields), else by tokens (_body), which also finds the errors."""
    a, b = r.toks[open_i][2], r.toks[r.closes[open_i]][1]
    items = _plain_fields(r.sc, a, b, commas or not strict, 0)
    if items is not None:
        return _build_body(r.sc, items)
    body = _Region(r.sc, a, b, collapse=False)
    return _body(body, 0, len(body.toks), strict=strict, commas=commas, depth=0)


# One field of a body that needs no tokens: separators, a key (a name, or a plain
# string), then `:` and a literal that nothing continues (the next character ends it:
# what _literal checks token by token), or `{` opening a sub-block. Only plain ASCII
# spellings: anything else (an expression, a comment, `512mb`, an array) is read by
# tokens. Keys that are operators after a value (`in: 1`) are too.
_FIELD_PARTS = r"""
    (?:(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)|(?P<skey>"[^"\\{\n]*"|'[^'\\\n]*'))[ \t\r\n]*
    (?::(?!:)[ \t\r\n]*
        (?:(?P<str>"[^"\\{\n]*"|'[^'\\\n]*')
          |(?P<num>(?:0[xX][0-9a-fA-F_]*|0[bB][01_]*|0[oO][0-7_]*
                  |\d[\d_]*(?:\.(?=[\d_])[\d_]*)?(?:[eE][+-]?\d+)?)(?![A-Za-z0-9_$.]))
          |(?P<word>true|false|nil)(?![A-Za-z0-9_$]))
        (?=[ \t\r\n;,}]|\Z)
     |(?P<brace>\{))"""
_PLAIN_FIELD = {
    True: re.compile(r"[ \t\r\n;,]*" + _FIELD_PARTS, re.VERBOSE),
    False: re.compile(r"[ \t\r\n;]*" + _FIELD_PARTS, re.VERBOSE),
}
_SEPARATORS = {True: re.compile(r"[ \t\r\n;,]*"), False: re.compile(r"[ \t\r\n;]*")}
# (key, key position, value kind or "{", value source, value position, sub-block items)
_Item = tuple[str, int, str, str, int, "list[Any] | None"]


def _plain_fields(sc: Scanned, a: int, b: int, commas: bool,  # noqa: C901 - one loop, a bail-out per case
                  depth: int) -> list[_Item] | None:
    """The items of text[a:b] when _PLAIN_FIELD reads all of it; None otherwise."""
    spans = sc.starts
    k = bisect_left(spans, a)
    if k < len(spans) and spans[k] < b:
        return None  # a comment, an interpolating string...: read by tokens
    text = sc.text
    match = _PLAIN_FIELD[commas].match
    items: list[_Item] = []
    pos = a
    while True:
        m = match(text, pos, b)
        if m is None:
            break
        key = m.group("name")
        if key is None:
            key = string_value(m.group("skey"))
            if key is None:
                return None
            key_pos = m.start("skey")
        elif key in _BINARY_WORDS:
            return None
        else:
            key_pos = m.start("name")
        kind = m.lastgroup
        if kind == "brace":
            if key_pos != m.start("name") or depth + 1 >= _MAX_DEPTH:
                return None  # (a string before `{`, or too deep: errors, read by tokens)
            open_at = m.start("brace")
            close = sc.closes.get(open_at)
            if close is None:
                return None
            sub = _plain_fields(sc, open_at + 1, close, True, depth + 1)
            if sub is None:
                return None
            items.append((key, key_pos, "{", "", open_at, sub))
            pos = close + 1
        else:
            items.append((key, key_pos, kind, m.group(kind), m.start(kind), None))  # type: ignore[arg-type]
            pos = m.end()
    if _SEPARATORS[commas].match(text, pos, b).end() != b:  # type: ignore[union-attr]
        return None
    return items


def _build_body(sc: Scanned, items: list[_Item]) -> Body:
    """Body from _plain_fields' items, locations asked for in source order."""
    fields: list[Field] = []
    blocks: list[SubBlock] = []
    loc_at = sc.loc
    for key, key_pos, kind, src, pos, sub in items:
        loc = loc_at(key_pos)
        if sub is not None:
            blocks.append(SubBlock(name=key, loc=loc, body=_build_body(sc, sub)))
            continue
        vloc = loc_at(pos)
        if kind == "str":  # (_FIELD_PARTS takes only strings without escapes or `{`)
            value = Value("string", src[1:-1], src, vloc)
        elif kind == "num":
            value = _number(src, vloc)
        elif src == "nil":
            value = Value("nil", None, src, vloc)
        else:
            value = Value("bool", src == "true", src, vloc)
        fields.append(Field(key=key, value=value, loc=loc))
    return Body(fields=tuple(fields), blocks=tuple(blocks))


def _literal(r: _Region, i: int, close: int) -> Value | None:
    """The value at i when it is a lone string, number, boolean or nil that nothing
    continues (what _value would find, without its steps); None otherwise."""
    if i >= close:
        return None
    kind, s, e = r.toks[i]
    text = r.text
    if kind != "str" and kind != "num" and not (kind == "name" and text[s:e] in _LITERAL_WORDS):
        return None
    if i + 1 < close and _goes_on(r, e, r.toks[i + 1]):
        return None
    # _make_value(r, i, i + 1, 0) for these kinds (no group to look into), in one step
    src = text[s:e]
    loc = r.sc.loc(s)
    if kind == "str":
        decoded = string_value(src)
        return Value("expr", None, src, loc) if decoded is None else Value("string", decoded, src, loc)
    if kind == "num":
        return _number(src, loc)
    if src == "nil":
        return Value("nil", None, src, loc)
    return Value("bool", src == "true", src, loc)


def _goes_on(r: _Region, end: int, tok: tuple[str, int, int]) -> bool:
    """Does tok make the value ending at `end` part of a longer expression (or, right
    after it, of `512mb`)?"""
    kind, s, e = tok
    if kind == "op":
        return r.text[s:e] in _GOES_ON_OPS
    if kind == "name":
        return s == end or r.text[s:e] in _BINARY_WORDS
    # a call or an index on the same line
    return (kind == "(" or kind == "[") and r.text.find("\n", end, s) == -1


def _skip_statement(r: _Region, i: int, close: int) -> int:
    """Lenient recovery: move past the item at i and the rest of its line."""
    prev = i
    i = r.after(i)
    while i < close and r.kind(i) not in (",", ";") and not r.newline_between(prev, i):
        prev = r.after(i) - 1
        i = prev + 1
    return i


def _value(r: _Region, i: int, limit: int, strict: bool) -> tuple[Value | None, int]:
    """Parse the expression starting at i; (None, next) when lenient and missing."""
    end = _expression(r, i, limit)
    if end is None:
        if strict:
            raise r.error("missing value", min(i, limit), 'a field looks like key: "value"')
        return None, _skip_statement(r, i, limit) if i < limit else limit
    return _make_value(r, i, end, 0), end


def _expression(r: _Region, i: int, limit: int) -> int | None:
    """End index of the expression starting at i, or None when there is none."""
    end = _operand(r, i, limit)
    while end is not None and end < limit:
        k = r.kind(end)
        word = r.src(end)
        if (k == "op" and word in _BINARY_OPS) or (k == "name" and word in _BINARY_WORDS):
            end = _operand(r, end + 1, limit)
        else:
            break
    return end


def _operand(r: _Region, i: int, limit: int) -> int | None:  # noqa: C901 - prefixes, atom, postfixes
    # prefixes, including a lambda's `fn (params)` before its body (no recursion)
    while i < limit:
        kind = r.kind(i)
        if kind == "op" and r.src(i) in _PREFIX_OPS:
            i += 1
        elif kind == "name" and r.src(i) in _PREFIX_WORDS:
            i += 1
        elif kind == "name" and r.src(i) == "fn" and i + 1 < limit and r.kind(i + 1) == "(":
            i = r.after(i + 1)
        else:
            break
    if i >= limit:
        return None
    kind = r.kind(i)
    if kind in ("str", "num", "regex", "markup", "text", "style", "(", "[", "{"):
        end = r.after(i)
    elif kind == "name":
        end = i + 1
    else:
        return None
    # postfix: calls and indexing on the same line, member access anywhere
    while end < limit:
        k = r.kind(end)
        if k in ("(", "[") and not r.newline_between(end - 1, end):
            end = r.after(end)
        elif k == "op" and r.src(end) in (".", "?.") and r.is_name(end + 1, limit):
            end += 2
        else:
            break
    return end


def _make_value(r: _Region, i: int, end: int, depth: int) -> Value:
    loc = r.loc(i)
    text = r.text[r.toks[i][1] : r.toks[end - 1][2]]
    if r.after(i) != end:
        return Value("expr", None, text, loc)
    kind = r.kind(i)
    if kind == "str":
        decoded = string_value(text)
        if decoded is None:
            return Value("expr", None, text, loc)
        return Value("string", decoded, text, loc)
    if kind == "num":
        return _number(text, loc)
    if kind == "name" and text in ("true", "false"):
        return Value("bool", text == "true", text, loc)
    if kind == "name" and text == "nil":
        return Value("nil", None, text, loc)
    if kind == "[":
        if depth >= _MAX_DEPTH:
            raise r.error("arrays nested too deeply", i, "a deploy value is a string, number or boolean")
        return Value("array", _elements(r, i, end - 1, depth + 1), text, loc)
    return Value("expr", None, text, loc)


def _elements(r: _Region, open_i: int, close: int, depth: int) -> tuple[Value, ...]:
    out: list[Value] = []
    start = open_i + 1
    i = start
    while i <= close:
        if i == close or r.kind(i) == ",":
            if i > start:
                end = _expression(r, start, i)
                if end != i:  # not one clean expression: keep it as text
                    text = r.text[r.toks[start][1] : r.toks[i - 1][2]]
                    out.append(Value("expr", None, text, r.loc(start)))
                else:
                    out.append(_make_value(r, start, i, depth))
            i += 1
            start = i
        else:
            i = r.after(i)
    return tuple(out)


# -- server --------------------------------------------------------------------------------


def _server(name: str | None, loc: Location, body: _Region) -> ServerBlock:
    dbs: list[DbDecl] = []
    wss: list[Location] = []
    sses: list[SseDecl] = []
    routes: list[RouteDecl] = []
    # Route groups nest to any depth: no recursion. Each entry carries the group's path
    # prefix (None once a prefix is not a plain string) for SSE paths; a group is read
    # where it appears (depth first), so that everything is met, and kept, in source order.
    work: list[tuple[_Region, str | None, Iterator[int]]] = [(body, "", body.starts(_SERVER_WORDS))]
    while work:
        r, prefix, found = work[-1]
        i = next(found, -1)
        if i < 0:
            work.pop()
            continue
        stop = len(r.toks)
        word = r.src(i)
        nxt = i + 1
        if word == "db" and nxt < stop and r.kind(nxt) == "{":
            db_loc = r.loc(i)
            fields = _group_body(r, nxt, strict=False, commas=True)
            dbs.append(DbDecl(fields=fields.fields, loc=db_loc))
        elif word == "ws" and nxt < stop and r.kind(nxt) == "{":
            wss.append(r.loc(i))
        elif word == "sse" and nxt < stop and r.kind(nxt) == "str":
            path = string_value(r.src(nxt))
            full = prefix + path if prefix is not None and path is not None else None
            sses.append(SseDecl(path=full, loc=r.loc(i)))
        elif word == "route" and nxt + 1 < stop and r.kind(nxt) == "name" and r.kind(nxt + 1) == "str":
            full = _join_route(prefix, string_value(r.src(nxt + 1)))
            routes.append(RouteDecl(method=r.src(nxt).upper(), path=full, loc=r.loc(i)))
        elif word == "routes" and nxt < stop and r.kind(nxt) == "str":
            group = _route_group_body(r, nxt + 1, stop)
            if group is not None:
                part = string_value(r.src(nxt))
                inner = prefix + part.rstrip("/") if prefix is not None and part is not None else None
                region = r.inner(group)
                work.append((region, inner, region.starts(_SERVER_WORDS)))
    return ServerBlock(name=name, loc=loc, dbs=tuple(dbs), websockets=tuple(wss), sse=tuple(sses),
                       routes=tuple(routes))


def _join_route(prefix: str | None, path: str | None) -> str | None:
    """A route's full path inside `routes "/prefix"` groups ("/" alone is the group's root)."""
    if prefix is None or path is None:
        return None
    if not prefix:
        return path
    return prefix if path in ("", "/") else prefix + path


def _route_group_body(r: _Region, i: int, stop: int) -> int | None:
    """After `routes "/prefix"`: the `{` of the group body, past the options the
    compiler allows there (`version: ...`, `deprecated: ...`, `sunset: ...`)."""
    while i < stop and r.kind(i) == "name" and r.src(i) in _ROUTE_OPTIONS and r.is_op(i + 1, stop, ":"):
        end = _expression(r, i + 2, stop)
        if end is None:
            return None
        i = end
    if i < stop and r.kind(i) == "{":
        return i
    return None


# -- security --------------------------------------------------------------------------------


def _security(loc: Location, r: _Region) -> SecurityBlock:
    auths: list[AuthDecl] = []
    origins: list[Value] = []
    close = len(r.toks)
    for i in r.starts(_SECURITY_WORDS):
        word = r.src(i)
        nxt = i + 1
        if word == "auth":
            kind = "jwt"
            if r.is_name(nxt, close) and nxt + 1 < close and r.kind(nxt + 1) == "{":
                kind = r.src(nxt)
                nxt += 1
            if nxt < close and r.kind(nxt) == "{":
                auths.append(AuthDecl(kind=kind, env_refs=_env_refs(r, nxt), loc=r.loc(i)))
        elif word == "cors" and nxt < close and r.kind(nxt) == "{":
            fields = _group_body(r, nxt, strict=False, commas=True)
            for f in fields.fields:
                if f.key == "origins":
                    v = f.value
                    origins.extend(v.value if v.kind == "array" else (v,))  # type: ignore[arg-type]
    return SecurityBlock(loc=loc, auths=tuple(auths), cors_origins=tuple(origins))


def _env_refs(r: _Region, open_i: int) -> tuple[str, ...]:
    """Names in env("NAME") calls anywhere inside the group opened at open_i."""
    toks, _ = tokens(r.sc, r.toks[open_i][2], r.toks[r.closes[open_i]][1], collapse=False)
    text = r.text
    names: list[str] = []
    for i in range(len(toks) - 2):
        k, s, e = toks[i]
        if k == "name" and text[s:e] == "env" and toks[i + 1][0] == "(" and toks[i + 2][0] == "str":
            _, s2, e2 = toks[i + 2]
            name = string_value(text[s2:e2])
            if name and name not in names:
                names.append(name)
    return tuple(names)


# -- data --------------------------------------------------------------------------------


def _data(loc: Location, r: _Region) -> DataBlock:
    sources: list[DataSource] = []
    close = len(r.toks)
    for i in r.starts(_DATA_WORDS):
        if not r.is_name(i + 1, close):
            continue
        name = r.src(i + 1)
        j = i + 2
        if r.is_op(j, close, ":"):
            # a type annotation: names, `.`, `<`, `>`, `,` and brackets, up to `=`; two
            # names in a row start the next statement (this keeps the walk linear)
            j += 1
            last_name = False
            while j < close and not r.is_op(j, close, "="):
                k = r.kind(j)
                if k == "name":
                    if last_name:
                        break
                    last_name = True
                elif k in ("op", "(", "["):
                    last_name = False
                else:
                    break
                j = r.after(j)
        if not r.is_op(j, close, "="):
            continue
        sources.append(DataSource(name=name, path=_read_path(r, j + 1, close), loc=r.loc(i)))
    return DataBlock(loc=loc, sources=tuple(sources))


def _read_path(r: _Region, i: int, close: int) -> str | None:
    """The literal first argument of `read("...")` starting at i, else None."""
    if not (r.is_name(i, close, "read") and i + 1 < close and r.kind(i + 1) == "("):
        return None
    arg = i + 2
    if arg < close and r.kind(arg) == "str" and arg + 1 < close and r.kind(arg + 1) in (",", ")"):
        return string_value(r.src(arg))
    return None


def _number(text: str, loc: Location) -> Value:
    digits = text.replace("_", "")
    try:
        if digits[:2].lower() in ("0x", "0b", "0o"):
            return Value("int", int(digits, 0), text, loc)
        if any(c in digits for c in ".eE"):
            return Value("float", float(digits), text, loc)
        return Value("int", int(digits), text, loc)
    except ValueError:  # `0x_` and friends: keep the text, let config complain
        return Value("expr", None, text, loc)


__all__ = ["ParsedFile", "TopBlock", "parse_source", "count_lines"]
