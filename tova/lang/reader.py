"""Read one .tova file into its top-level blocks and the few facts that imply
infrastructure (see tova/lang/program.py).

Three layers: the lexer (lexer.py) turns text into tokens; the island grammar
(tova.lark, LALR) finds the top-level blocks among collapsed bracket groups; a small walk
over balanced token groups reads the inside of the blocks that matter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import lark
from lark.lexer import Lexer as LarkLexer
from lark.lexer import Token as LarkToken

from tova.errors import Location, TovaSyntaxError
from tova.lang.lexer import NON_VALUE_WORDS, Lexed, lex, string_value
from tova.lang.program import (
    AuthDecl,
    Body,
    BrowserBlock,
    DataBlock,
    DataSource,
    DbDecl,
    DeployBlock,
    Field,
    Program,
    SecurityBlock,
    ServerBlock,
    SseDecl,
    SubBlock,
    Value,
)

# Words that open a top-level block, and what may sit between the word and its `{`.
_NAMED_BLOCKS = {"server": "SERVER", "browser": "BROWSER", "client": "BROWSER",
                 "shared": "SHARED", "test": "TEST", "bench": "BENCH", "edge": "EDGE"}
_PLAIN_BLOCKS = {"security": "SECURITY", "data": "DATA", "cli": "CLI",
                 "theme": "THEME", "auth": "AUTH"}

_BINARY_OPS = frozenset(
    "+ - * / % ** == != < > <= >= && || ?? |> .. ..= & | ^ =>".split()
)
_BINARY_WORDS = frozenset({"and", "or", "is", "in"})
_PREFIX_OPS = frozenset({"-", "+", "!", "~", "..."})
_PREFIX_WORDS = frozenset({"not", "await"})
# Token kinds after which a new statement may begin (besides non-keyword names).
_STATEMENT_AFTER = frozenset({";", "}", ")", "]", "str", "num", "regex", "jsx", "style"})
# Deeper than this, sub-blocks of a deploy body are surely not configuration.
_MAX_BODY_DEPTH = 32


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


def parse_source(text: str, path: str) -> ParsedFile:
    """Parse one file's text. Raises TovaSyntaxError (with location) and nothing else."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lx = lex(text, path)
    return _Reader(lx).read()


def read_project(root: str | Path) -> Program:
    """Read a project directory like the compiler does (see tova.lang.project)."""
    from tova.lang.project import read_project as _read_project

    return _read_project(root)


def count_lines(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


# -- the grammar and its token adapter ----------------------------------------------------


class _TopLevelTokens(LarkLexer):
    """Feeds lark one token per top-level item of a `_Reader`."""

    def __init__(self, lexer_conf: object) -> None:  # lark's constructor signature
        pass

    def lex(self, data: _Reader) -> Iterator[LarkToken]:  # type: ignore[override]
        return data.top_level_tokens()


@lru_cache(maxsize=1)
def _grammar() -> lark.Lark:
    text = Path(__file__).with_name("tova.lark").read_text(encoding="utf-8")
    options = dict(parser="lalr", lexer=_TopLevelTokens, maybe_placeholders=True)
    cache = _grammar_cache_file()
    if cache is not None:
        try:
            # Building the LALR tables costs ~50 ms a run; lark checks the cached copy
            # against the grammar's hash before it trusts it.
            return lark.Lark(text, cache=str(cache), **options)
        except (OSError, EOFError, ValueError, AttributeError, ImportError):
            pass
    return lark.Lark(text, **options)


def _grammar_cache_file() -> Path | None:
    """A private (0700) per-user cache directory: lark's cache is a pickle, so it must
    never live where another user could write it (such as /tmp)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = Path(base) / "tova-deploy"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            return None
    except OSError:
        return None
    return directory / f"grammar-lark{lark.__version__}.cache"


# -- the reader ------------------------------------------------------------------------


class _Reader:
    def __init__(self, lx: Lexed) -> None:
        self.lx = lx
        self.text = lx.text
        self.toks = lx.toks
        self.closes = lx.closes

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
        return self.lx.loc(self.toks[i][1])

    def error(self, message: str, i: int, hint: str) -> TovaSyntaxError:
        pos = self.toks[i][1] if i < len(self.toks) else len(self.text)
        return self.lx.error(message, pos, hint)

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

    def level(self, start: int, stop: int) -> Iterator[tuple[int | None, int]]:
        """(previous item's last token, item start) for the items of one level."""
        prev = None
        i = start
        while i < stop:
            yield prev, i
            nxt = self.after(i)
            prev = nxt - 1
            i = nxt

    # top level --------------------------------------------------------------------
    def top_level_tokens(self) -> Iterator[LarkToken]:
        """One lark token per top-level item; a run of plain code is one _OTHER."""
        toks = self.toks
        n = len(toks)
        last = ""
        for prev, i in self.level(0, n):
            kind = toks[i][0]
            if kind == "{":
                ttype = "BODY"
            elif kind == "str":
                ttype = "STRING"
            elif kind == "name" and self.stmt_start(prev, i):
                ttype = self.block_keyword(i, n)
            else:
                ttype = "_OTHER"
            if ttype == "_OTHER" and last == "_OTHER":
                continue
            last = ttype
            yield LarkToken(ttype, i, start_pos=toks[i][1])

    def block_keyword(self, i: int, n: int) -> str:
        word = self.src(i)
        nxt = i + 1
        body_next = nxt < n and self.kind(nxt) == "{"
        named_body = (
            nxt + 1 < n and self.kind(nxt) == "str" and self.kind(nxt + 1) == "{"
        )
        if word in _NAMED_BLOCKS:
            return _NAMED_BLOCKS[word] if body_next or named_body else "_OTHER"
        if word in _PLAIN_BLOCKS:
            return _PLAIN_BLOCKS[word] if body_next else "_OTHER"
        if word == "deploy":
            # `deploy {` and `deploy prod {` are sent on so the grammar rejects them.
            unquoted = nxt + 1 < n and self.kind(nxt) == "name" and self.kind(nxt + 1) == "{"
            return "DEPLOY" if body_next or named_body or unquoted else "_OTHER"
        if word == "concurrent":
            j = nxt
            while j < n and not self.newline_between(j - 1, j) and self.kind(j) not in (";", "}"):
                if self.kind(j) == "{":
                    return "CONCURRENT"
                j = self.after(j)
            return "_OTHER"
        return "_OTHER"

    def read(self) -> ParsedFile:
        try:
            tree = _grammar().parse(self)
        except lark.exceptions.UnexpectedToken as e:
            raise self.grammar_error(e) from None
        except lark.exceptions.UnexpectedEOF:
            raise self.error(
                "deploy block is incomplete", len(self.toks),
                'write deploy "name" { server: "..." domain: "..." }',
            ) from None
        except lark.exceptions.LarkError as e:  # defensive: never leak lark's errors
            raise TovaSyntaxError(f"cannot read {self.lx.path}: {e}") from None
        out: dict[str, list[Any]] = {"deploy": [], "server": [], "browser": [], "security": [], "data": []}
        for block in tree.children:
            if not isinstance(block, lark.Tree):
                continue
            kind = block.data.removesuffix("_block")
            if kind not in out:
                continue
            kw, *rest = block.children
            name_node = rest[0] if len(rest) == 2 else None  # None: an unnamed block
            name = self.block_name(_token(_tree(name_node).children[0]).value) if name_node else None
            out[kind].append(self.read_block(kind, _token(kw).value, name, _token(rest[-1]).value))
        return ParsedFile(
            path=self.lx.path,
            line_count=count_lines(self.text),
            deploys=tuple(out["deploy"]),
            servers=tuple(out["server"]),
            browsers=tuple(out["browser"]),
            securities=tuple(out["security"]),
            datas=tuple(out["data"]),
        )

    def grammar_error(self, e: lark.exceptions.UnexpectedToken) -> TovaSyntaxError:
        i = e.token.value if isinstance(e.token.value, int) else len(self.toks)
        if "STRING" in e.expected:
            if i < len(self.toks) and self.kind(i) == "name":
                return self.error(
                    "a deploy block name must be a quoted string", i,
                    f'write deploy "{self.src(i)}" {{ ... }}',
                )
            return self.error(
                "a deploy block needs a name", i,
                'name the environment: deploy "prod" { ... }',
            )
        return self.error("unexpected code at top level", i, "check the block structure")

    def block_name(self, i: int) -> str:
        name = string_value(self.src(i))
        if name is None:
            raise self.error(
                "a block name must be a plain string", i,
                "remove the {...} interpolation from the name",
            )
        return name

    def read_block(self, kind: str, kw: int, name: str | None, body: int) -> object:
        loc = self.loc(kw)
        close = self.closes[body]
        if kind == "deploy":
            assert name is not None
            return DeployBlock(name=name, loc=loc, body=self.body(body, close, strict=True,
                                                                   commas=False, depth=0))
        if kind == "server":
            return self.server(name, loc, body, close)
        if kind == "browser":
            return BrowserBlock(name=name, loc=loc)
        if kind == "security":
            return self.security(loc, body, close)
        return self.data(loc, body, close)

    # bodies of `key: value` fields ----------------------------------------------------
    def body(self, open_i: int, close: int, strict: bool, commas: bool, depth: int) -> Body:  # noqa: C901
        """Fields and sub-blocks between the braces at open_i and close.

        strict (deploy blocks): every problem is a syntax error; commas between fields
        are allowed only when `commas`. Otherwise unreadable parts are skipped."""
        if depth > _MAX_BODY_DEPTH:
            raise self.error("blocks nested too deeply", open_i, "flatten the configuration")
        fields: list[Field] = []
        blocks: list[SubBlock] = []
        i = open_i + 1
        while i < close:
            kind = self.kind(i)
            if kind == ";" or (kind == "," and (commas or not strict)):
                i += 1
                continue
            if kind == ",":
                raise self.error(
                    "fields of a deploy block are not separated by commas", i,
                    "put each field on its own line, or separate them with ';'",
                )
            if kind in ("name", "str") and i + 1 < close:
                key = self.src(i) if kind == "name" else string_value(self.src(i))
                if key is not None and self.is_op(i + 1, close, ":"):
                    value, nxt = self.value(i + 2, close, strict)
                    if strict and nxt < close and self.kind(nxt) == "name" \
                            and self.toks[nxt][1] == self.toks[nxt - 1][2]:
                        raise self.error(
                            f"'{self.text[self.toks[i + 2][1]:self.toks[nxt][2]]}' is not a value", i + 2,
                            f'sizes and other text are strings: {key}: "{self.src(nxt - 1)}{self.src(nxt)}"',
                        )
                    if value is not None:
                        fields.append(Field(key=key, value=value, loc=self.loc(i)))
                        i = nxt
                        continue
                elif key is not None and kind == "name" and self.kind(i + 1) == "{":
                    sub_close = self.closes[i + 1]
                    sub = self.body(i + 1, sub_close, strict, True, depth + 1)
                    blocks.append(SubBlock(name=key, loc=self.loc(i), body=sub))
                    i = sub_close + 1
                    continue
                elif strict and kind == "name":
                    raise self.error(
                        f"field '{key}' needs ':' before its value", i + 1,
                        f'write {key}: "value"',
                    )
            if strict:
                if kind == "name":  # a name right before the closing brace
                    raise self.error(
                        f"field '{self.src(i)}' needs ':' and a value", i,
                        f'write {self.src(i)}: "value"',
                    )
                raise self.error(
                    f"expected a field name, found {self.src(i)[:30]!r}", i,
                    'fields look like key: "value"',
                )
            i = self.skip_statement(i, close)
        return Body(fields=tuple(fields), blocks=tuple(blocks))

    def skip_statement(self, i: int, close: int) -> int:
        """Lenient recovery: move past the item at i and the rest of its line."""
        prev = i
        i = self.after(i)
        while i < close and self.kind(i) not in (",", ";") and not self.newline_between(prev, i):
            prev = self.after(i) - 1
            i = prev + 1
        return i

    def value(self, i: int, limit: int, strict: bool) -> tuple[Value | None, int]:
        """Parse the expression starting at i; (None, next) when lenient and missing."""
        end = self.expression(i, limit)
        if end is None:
            if strict:
                raise self.error(
                    "missing value", min(i, limit), 'a field looks like key: "value"'
                )
            return None, self.skip_statement(i, limit) if i < limit else limit
        return self.make_value(i, end), end

    def expression(self, i: int, limit: int) -> int | None:
        """End index of the expression starting at i, or None when there is none."""
        end = self.operand(i, limit)
        while end is not None and end < limit:
            k = self.kind(end)
            word = self.src(end)
            if (k == "op" and word in _BINARY_OPS) or (k == "name" and word in _BINARY_WORDS):
                end = self.operand(end + 1, limit)
            else:
                break
        return end

    def operand(self, i: int, limit: int) -> int | None:  # noqa: C901
        # prefixes, including a lambda's `fn (params)` before its body (no recursion)
        while i < limit:
            kind = self.kind(i)
            if kind == "op" and self.src(i) in _PREFIX_OPS:
                i += 1
            elif kind == "name" and self.src(i) in _PREFIX_WORDS:
                i += 1
            elif kind == "name" and self.src(i) == "fn" and i + 1 < limit and self.kind(i + 1) == "(":
                i = self.after(i + 1)
            else:
                break
        if i >= limit:
            return None
        kind = self.kind(i)
        if kind in ("str", "num", "regex", "jsx", "(", "[", "{"):
            end = self.after(i)
        elif kind == "name":
            end = i + 1
        else:
            return None
        # postfix: calls and indexing on the same line, member access anywhere
        while end < limit:
            k = self.kind(end)
            if k in ("(", "[") and not self.newline_between(end - 1, end):
                end = self.after(end)
            elif k == "op" and self.src(end) in (".", "?.") and self.is_name(end + 1, limit):
                end += 2
            else:
                break
        return end

    def make_value(self, i: int, end: int) -> Value:
        loc = self.loc(i)
        text = self.text[self.toks[i][1] : self.toks[end - 1][2]]
        if self.after(i) != end:
            return Value("expr", None, text, loc)
        kind = self.kind(i)
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
            return Value("array", self.elements(i, end - 1), text, loc)
        return Value("expr", None, text, loc)

    def elements(self, open_i: int, close: int) -> tuple[Value, ...]:
        out: list[Value] = []
        start = open_i + 1
        i = start
        while i <= close:
            if i == close or self.kind(i) == ",":
                if i > start:
                    end = self.expression(start, i)
                    if end != i:  # not one clean expression: keep it as text
                        text = self.text[self.toks[start][1] : self.toks[i - 1][2]]
                        out.append(Value("expr", None, text, self.loc(start)))
                    else:
                        out.append(self.make_value(start, i))
                i += 1
                start = i
            else:
                i = self.after(i)
        return tuple(out)

    # server ------------------------------------------------------------------------
    def server(self, name: str | None, loc: Location, body: int, close: int) -> ServerBlock:
        dbs: list[tuple[int, DbDecl]] = []
        wss: list[tuple[int, Location]] = []
        sses: list[tuple[int, SseDecl]] = []
        # Route groups nest to any depth: no recursion. Each entry carries the group's
        # path prefix (None once a prefix is not a plain string) for SSE paths.
        work: list[tuple[int, int, str | None]] = [(body, close, "")]
        while work:
            open_i, stop, prefix = work.pop()
            for prev, i in self.level(open_i + 1, stop):
                if self.kind(i) != "name" or not self.stmt_start(prev, i):
                    continue
                word = self.src(i)
                nxt = i + 1
                if word == "db" and nxt < stop and self.kind(nxt) == "{":
                    fields = self.body(nxt, self.closes[nxt], strict=False, commas=True, depth=0)
                    dbs.append((i, DbDecl(fields=fields.fields, loc=self.loc(i))))
                elif word == "ws" and nxt < stop and self.kind(nxt) == "{":
                    wss.append((i, self.loc(i)))
                elif word == "sse" and nxt < stop and self.kind(nxt) == "str":
                    path = string_value(self.src(nxt))
                    full = prefix + path if prefix is not None and path is not None else None
                    sses.append((i, SseDecl(path=full, loc=self.loc(i))))
                elif word == "routes" and nxt < stop and self.kind(nxt) == "str":
                    group = self.route_group_body(nxt + 1, stop)
                    if group is not None:
                        part = string_value(self.src(nxt))
                        inner = prefix + part.rstrip("/") if prefix is not None and part is not None else None
                        work.append((group, self.closes[group], inner))
        return ServerBlock(
            name=name,
            loc=loc,
            dbs=tuple(d for _, d in sorted(dbs, key=lambda t: t[0])),
            websockets=tuple(w for _, w in sorted(wss, key=lambda t: t[0])),
            sse=tuple(s for _, s in sorted(sses, key=lambda t: t[0])),
        )

    def route_group_body(self, i: int, stop: int) -> int | None:
        """After `routes "/prefix"`: the `{` of the group body, past any options."""
        prev = i - 1
        while i < stop:
            kind = self.kind(i)
            if kind == ";":
                return None
            if kind == "{":
                nxt = self.closes[i] + 1
                if nxt >= stop or self.kind(nxt) != "{":
                    return i
            elif self.newline_between(prev, i) and self.stmt_start(prev, i):
                return None  # the statement ended without a body
            prev = self.after(i) - 1
            i = prev + 1
        return None

    # security ------------------------------------------------------------------------
    def security(self, loc: Location, body: int, close: int) -> SecurityBlock:
        auths: list[AuthDecl] = []
        origins: list[Value] = []
        for prev, i in self.level(body + 1, close):
            if self.kind(i) != "name" or not self.stmt_start(prev, i):
                continue
            word = self.src(i)
            nxt = i + 1
            if word == "auth":
                kind = "jwt"
                if self.is_name(nxt, close) and nxt + 1 < close and self.kind(nxt + 1) == "{":
                    kind = self.src(nxt)
                    nxt += 1
                if nxt < close and self.kind(nxt) == "{":
                    refs = self.env_refs(nxt, self.closes[nxt])
                    auths.append(AuthDecl(kind=kind, env_refs=refs, loc=self.loc(i)))
            elif word == "cors" and nxt < close and self.kind(nxt) == "{":
                fields = self.body(nxt, self.closes[nxt], strict=False, commas=True, depth=0)
                for f in fields.fields:
                    if f.key == "origins":
                        v = f.value
                        origins.extend(v.value if v.kind == "array" else (v,))  # type: ignore[arg-type]
        return SecurityBlock(loc=loc, auths=tuple(auths), cors_origins=tuple(origins))

    def env_refs(self, open_i: int, close: int) -> tuple[str, ...]:
        """Names in env("NAME") calls anywhere between the braces."""
        names: list[str] = []
        for i in range(open_i + 1, close - 2):
            if (
                self.kind(i) == "name"
                and self.kind(i + 1) == "("
                and self.kind(i + 2) == "str"
                and self.src(i) == "env"
            ):
                name = string_value(self.src(i + 2))
                if name and name not in names:
                    names.append(name)
        return tuple(names)

    # data -----------------------------------------------------------------------------
    def data(self, loc: Location, body: int, close: int) -> DataBlock:
        sources: list[DataSource] = []
        for prev, i in self.level(body + 1, close):
            if not (self.is_name(i, close, "source") and self.stmt_start(prev, i)):
                continue
            if not self.is_name(i + 1, close):
                continue
            name = self.src(i + 1)
            j = i + 2
            last = i + 1
            # an optional `: Type`, then `=`
            while j < close and not self.is_op(j, close, "="):
                if self.kind(j) in (";", "}") or self.newline_between(last, j):
                    break
                last = self.after(j) - 1
                j = last + 1
            if not self.is_op(j, close, "="):
                continue
            sources.append(DataSource(name=name, path=self.read_path(j + 1, close), loc=self.loc(i)))
        return DataBlock(loc=loc, sources=tuple(sources))

    def read_path(self, i: int, close: int) -> str | None:
        """The literal first argument of `read("...")` starting at i, else None."""
        if not (self.is_name(i, close, "read") and i + 1 < close and self.kind(i + 1) == "("):
            return None
        arg = i + 2
        if self.kind(arg) == "str" and self.kind(arg + 1) in (",", ")"):
            return string_value(self.src(arg))
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


__all__ = ["ParsedFile", "parse_source", "read_project", "count_lines"]


def _tree(node: lark.Tree[lark.Token] | lark.Token) -> lark.Tree[lark.Token]:
    if not isinstance(node, lark.Tree):
        raise TypeError(f"grammar shape changed: expected a subtree, got {node!r}")
    return node


def _token(node: lark.Tree[lark.Token] | lark.Token) -> lark.Token:
    if not isinstance(node, lark.Token):
        raise TypeError(f"grammar shape changed: expected a token, got {node!r}")
    return node
