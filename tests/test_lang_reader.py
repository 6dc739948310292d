"""The reader: top-level blocks, the facts inference needs, the hazards of section 4 of
docs/tova-syntax.md, and syntax errors with exact locations."""

from __future__ import annotations

import pytest

from tova.errors import TovaSyntaxError
from tova.lang.program import Value
from tova.lang.reader import parse_source

FULLSTACK = r'''#!/usr/bin/env tova
// A realistic full-stack Tova app.
import { format_date } from "./utils"

type User {
  id: Int
  name: String
  email: String
}

shared {
  fn validate_email(email: String) -> Bool {
    email |> contains("@") and len(email) > 3
  }
}

server {
  db { driver: "postgres", url: env("DATABASE_URL") }

  env PORT: Int = 3000

  fn all_users() -> [User] {
    db.query("SELECT * FROM users WHERE name LIKE '%{x}%'")
  }

  route GET "/api/users" => all_users
  route POST "/api/users" => fn(req) {
    body = req.body
    if not validate_email(body.email) {
      return { error: "bad email: {body.email}" }
    }
    ratio = total / count
    pattern = /^[a-z{}"']+\/$/i
    db.query("INSERT INTO users (name, email) VALUES ($1, $2)", [body.name, body.email])
  }

  ws {
    on_open fn(ws) { print("open") }
    on_message fn(ws, msg) { ws.send("echo: {msg}") }
  }

  sse "/events" fn(params) {
    send({ time: Date.now() })
  }

  routes "/api/v1" {
    route GET "/health" => fn() { { ok: true } }
    routes "/admin" {
      routes "/stream" {
        sse "/admin/feed" fn(p) { send(p) }
        ws { on_message fn(ws, m) { ws.send(m) } }
        db { path: "./admin.db" }
      }
    }
  }
}

browser {
  state users = []
  state query = ""

  computed filtered = users |> filter(fn(u) u.name |> contains(query))

  effect {
    users = server.all_users()
  }

  component UserCard(user) {
    <div class="card">
      <h2>"{user.name}"</h2>
      <p>"Don't forget: {user.email} } // not a comment"</p>
      if user.admin {
        <span class="badge">"admin"</span>
      }
    </div>
  }

  component App {
    <main>
      <input value={query} on:input={fn(e) query = e.target.value} />
      <ul>
        for u in filtered {
          <li key={u.id}><UserCard user={u} /></li>
        }
      </ul>
    </main>
  }

  style {
    .card { background: url(https://example.com/bg.png); padding: 1rem; }
    .badge::after { content: "it's"; }
  }
}

security {
  auth jwt {
    secret: env("JWT_SECRET")
    expires: 86400
    refresh_secret: env("JWT_REFRESH_SECRET")
  }
  cors {
    origins: ["https://myapp.com", "https://www.myapp.com"]
    methods: ["GET", "POST"]
    credentials: true
  }
  role Admin { can: [manage_users] }
}

data {
  source customers: Table<Customer> = read("data/customers.csv")
  source rates = read("https://example.com/rates.json")
  pipeline clean = customers |> where(.email != "")
  refresh rates every 15.minutes
}

/* deploy "fake" { server: "nope" domain: "nope" } */
fake = "deploy \"fake2\" { server: 1 }"

deploy "prod" {
  server: "root@159.65.100.42"
  domain: "myapp.com"
  instances: 2
  memory: "512mb"
  env {
    NODE_ENV: "production"
  }
  db {
    postgres { name: "myapp_prod", port: 5433 }
    redis { maxmemory: "256mb" }
  }
}

deploy 'staging' {
  server: "root@staging.myapp.com"; domain: "staging.myapp.com"
  branch: "develop"
  restart_on_failure: false
}
'''


def fields(body) -> dict[str, object]:
    return {f.key: f.value.value for f in body.fields}


def at(loc) -> tuple[int, int]:
    return (loc.line, loc.col)


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the nth occurrence of needle in text."""
    pos = -1
    for _ in range(nth + 1):
        pos = text.index(needle, pos + 1)
    return text.count("\n", 0, pos) + 1


# -- the full-stack fixture -------------------------------------------------------------


@pytest.fixture(scope="module")
def app():
    return parse_source(FULLSTACK, "src/app.tova")


def test_fullstack_blocks(app) -> None:
    assert app.path == "src/app.tova"
    assert app.line_count == FULLSTACK.count("\n")
    assert [d.name for d in app.deploys] == ["prod", "staging"]
    assert len(app.servers) == 1 and app.servers[0].name is None
    assert [at(b.loc) for b in app.browsers] == [(line_of(FULLSTACK, "browser {"), 1)]
    assert len(app.securities) == 1 and len(app.datas) == 1


def test_fullstack_deploys(app) -> None:
    prod, staging = app.deploys
    prod_line = line_of(FULLSTACK, 'deploy "prod"')
    assert at(prod.loc) == (prod_line, 1) and prod.loc.file == "src/app.tova"
    assert fields(prod.body) == {
        "server": "root@159.65.100.42", "domain": "myapp.com", "instances": 2, "memory": "512mb",
    }
    env, db = prod.body.blocks
    assert env.name == "env" and fields(env.body) == {"NODE_ENV": "production"}
    assert db.name == "db" and [b.name for b in db.body.blocks] == ["postgres", "redis"]
    assert fields(db.body.blocks[0].body) == {"name": "myapp_prod", "port": 5433}
    assert fields(db.body.blocks[1].body) == {"maxmemory": "256mb"}
    assert fields(staging.body) == {
        "server": "root@staging.myapp.com", "domain": "staging.myapp.com",
        "branch": "develop", "restart_on_failure": False,
    }
    # locations of a field and of its value
    server_field = prod.body.fields[0]
    assert at(server_field.loc) == (prod_line + 1, 3)
    assert at(server_field.value.loc) == (prod_line + 1, 11)
    assert server_field.value.text == '"root@159.65.100.42"'


def test_fullstack_server_facts(app) -> None:
    server = app.servers[0]
    assert [{f.key: f.value.value for f in d.fields} for d in server.dbs] == [
        {"driver": "postgres", "url": None}, {"path": "./admin.db"},
    ]
    assert server.dbs[0].fields[1].value.kind == "expr"
    assert server.dbs[0].fields[1].value.text == 'env("DATABASE_URL")'
    assert [at(w) for w in server.websockets] == [
        (line_of(FULLSTACK, "  ws {"), 3), (line_of(FULLSTACK, "ws { on_message"), 9),
    ]
    assert [(s.path, at(s.loc)) for s in server.sse] == [
        ("/events", (line_of(FULLSTACK, 'sse "/events"'), 3)),
        # Route group prefixes are part of the path the proxy sees.
        ("/api/v1/admin/stream/admin/feed", (line_of(FULLSTACK, 'sse "/admin/feed"'), 9)),
    ]


def test_fullstack_security_and_data(app) -> None:
    sec = app.securities[0]
    assert [(a.kind, a.env_refs) for a in sec.auths] == [("jwt", ("JWT_SECRET", "JWT_REFRESH_SECRET"))]
    assert [o.value for o in sec.cors_origins] == ["https://myapp.com", "https://www.myapp.com"]
    sources = app.datas[0].sources
    assert [(s.name, s.path) for s in sources] == [
        ("customers", "data/customers.csv"), ("rates", "https://example.com/rates.json"),
    ]


# -- hazards of section 4: the reader must never lose its place -----------------------

DEPLOY_AFTER = '\ndeploy "prod" { server: "s" domain: "d" }\n'

HAZARDS = {
    "braces in strings": 'x = "}}} \\{ {\'{\'} {f("}")}"',
    "braces in nested interpolation": 'x = "a {g("b {h(1)}")} c {k(\'}\')}"',
    "escaped brace": 'x = "\\{ not an interpolation"',
    "raw string ends at first quote": 'p = r"C:\\dir\\"\nq = "{1}"',
    "single quotes never interpolate": "s = '{ not an interpolation'",
    "bare quotes in triple-quoted": 't = """ say "hi" and "{name}" \\{ """',
    "regex with braces and quotes": 'r = /[{"\']+}/g\nq = /\\/{/',
    "division after paren": 'y = (x) / 2 + f("/")',
    "division after brace": 'z = {a: 1} / 2 + g("/")',
    "division after bracket and name": 'w = [1][0] / 2 / n + h("/")',
    "nested block comments": '/* a /* deploy "x" { } */ still a comment } */',
    "// inside strings": 'u = "http://x.com/{path}"',
    "// inside regex": 'r = /[//]x/',
    "// inside markup text": 'c = <p>see http://x.com {link}</p>',
    "// inside CSS": 'style { a { background: url(https://x.com/a.png) } }',
    "CSS with quotes and apostrophes": "style { .a::after { content: \"it's\" } /* don't */ }",
    "unbalanced } in markup text": "c = <p>a } b }}</p>",
    "apostrophes in markup text": "c = <p>it's a } trap's</p>",
    "quoted prose in markup": "c = <p>\"Don't {x}\" {\"}\"}</p>",
    "block words as identifiers": "deploy = 1\ndata = deploy + 1\nsecurity = data\ntest = 2",
    "block words as arguments": 'f(deploy, data)\nx = [server_name, deploy]',
    "block word inside a function": 'fn f(data) {\n  data {\n  }\n  deploy "x" { }\n}',
    "block word after if": "if data { print(1) }",
    "block text in a string": 'fake = "deploy \\"x\\" { server: 1 }"',
    "block text in single quotes": "fake = 'deploy \"x\" { server: 1 }'",
    "block text in a line comment": '// deploy "x" {\n/// server {',
    "block text in markup": 'c = <p>"deploy \\"x\\" \\{"</p>',
    "block text in a regex": 'r = /deploy "x" {/',
    # markup after a value on a new line (issue 9, point 1): the component body shape
    "markup on a new line after a value": 'state count = 0\n<p>{count}</p>',
    "top-level fragment": '<>\n  <h1>"Title"</h1>\n  <p>"a } b"</p>\n</>',
    "arrow inside a tag's attribute": '<input onkeydown={fn(e) { match e.key { "Enter" => go() _ => nil } }} />',
    "thin arrow and >= inside a tag": '<A f={fn(x) -> Int { x }} ok={a >= b} />',
    "test block with a timeout": 'test "slow" timeout=5000 {\n  deploy "x" { }\n}',
}


@pytest.mark.parametrize("prefix", list(HAZARDS.values()), ids=list(HAZARDS))
def test_hazard_does_not_lose_place(prefix: str) -> None:
    parsed = parse_source(prefix + DEPLOY_AFTER, "h.tova")
    assert [b.kind for b in parsed.blocks][-1] == "deploy"
    assert [d.name for d in parsed.deploys] == ["prod"]
    assert fields(parsed.deploys[0].body) == {"server": "s", "domain": "d"}
    assert parsed.servers == () and parsed.datas == () and parsed.securities == ()


@pytest.mark.parametrize("prefix", list(HAZARDS.values()), ids=list(HAZARDS))
def test_hazard_inside_a_server_block(prefix: str) -> None:
    src = "server {\n" + prefix + "\n  ws { }\n}\n"
    parsed = parse_source(src, "h.tova")
    assert len(parsed.servers) == 1
    assert [w.line for w in parsed.servers[0].websockets] == [prefix.count("\n") + 3]


@pytest.mark.parametrize(
    "name_src", ["'prod'", '"prod"', '"""prod"""', 'r"prod"', 'f"prod"', "'pr\\'od'"]
)
def test_block_names_in_any_quote_style(name_src: str) -> None:
    parsed = parse_source(f'deploy {name_src} {{ server: "s" }}\nserver {name_src} {{ }}', "n.tova")
    expected = "pr'od" if "\\'" in name_src else "prod"
    assert [d.name for d in parsed.deploys] == [expected]
    assert [s.name for s in parsed.servers] == [expected]


def test_block_like_text_never_counts() -> None:
    src = '''
    x = "server \\{ db \\{ driver: \\"postgres\\" } }"
    /* security { auth jwt { secret: env("X") } } */
    // data { source a = read("a.csv") }
    y = 'browser { }'
    '''
    parsed = parse_source(src, "t.tova")
    assert (parsed.deploys, parsed.servers, parsed.browsers, parsed.securities, parsed.datas) == (
        (), (), (), (), ()
    )


# -- facts -------------------------------------------------------------------------------


def test_blocks_and_statements_on_one_line() -> None:
    parsed = parse_source('x = 1 deploy "p" { server: "a" domain: "b" } server { ws { } }', "l.tova")
    assert fields(parsed.deploys[0].body) == {"server": "a", "domain": "b"}
    assert len(parsed.servers[0].websockets) == 1


def test_browser_and_client_blocks() -> None:
    parsed = parse_source('browser { }\nclient "admin" { }\nshared { }\ntest "x" { }', "b.tova")
    assert [(b.name, b.loc.line) for b in parsed.browsers] == [(None, 1), ("admin", 2)]


def test_server_db_only_when_followed_by_brace() -> None:
    src = '''server "api" {
      x = db.query("SELECT 1")
      db
      fn f() { db { path: "inner.db" } }
      db { type: "redis" }
      db {
        path: "./data.db"
        wal: true
      }
    }'''
    server = parse_source(src, "s.tova").servers[0]
    assert server.name == "api"
    assert [{f.key: f.value.value for f in d.fields} for d in server.dbs] == [
        {"type": "redis"}, {"path": "./data.db", "wal": True},
    ]
    assert [d.loc.line for d in server.dbs] == [5, 6]


def test_route_groups_three_deep_with_options() -> None:
    src = '''server {
      routes "/a" {
        sse "/top" fn(p) { }
        routes "/b" version: "2" deprecated: true {
          routes "/c" {
            ws { on_message fn(ws, m) { } }
            sse "/deep/{id}" fn(p) { }
            db { path: "deep.db" }
          }
        }
      }
      route GET "/x" => fn() { ws { } }
    }'''
    server = parse_source(src, "r.tova").servers[0]
    assert [w.line for w in server.websockets] == [6]
    assert [(s.path, s.loc.line) for s in server.sse] == [("/a/top", 3), (None, 7)]
    assert [d.fields[0].value.value for d in server.dbs] == ["deep.db"]


def test_security_auth_kinds_and_env_refs() -> None:
    src = '''security {
      auth {
        secret: env("JWT_SECRET")
        port: env("PORT", "3000")
        nested: { inner: env("INNER") + env("JWT_SECRET") }
        not_a_ref: env(NAME)
      }
      auth oauth { client_id: env("OAUTH_ID") }
      cors { origins: ["https://a.com", env("ORIGIN")], credentials: true }
      protect "/admin/*" { require: Admin }
    }'''
    sec = parse_source(src, "sec.tova").securities[0]
    assert [(a.kind, a.env_refs) for a in sec.auths] == [
        ("jwt", ("JWT_SECRET", "PORT", "INNER")), ("oauth", ("OAUTH_ID",)),
    ]
    assert [(o.kind, o.value) for o in sec.cors_origins] == [
        ("string", "https://a.com"), ("expr", None),
    ]


def test_data_sources() -> None:
    src = '''data {
      source users: [User] = read("data/users.csv")
      source remote = read("https://x.com/r.json", { format: "json" })
      source computed = read(path_var)
      source other = load()
      x = source
      source
    }'''
    sources = parse_source(src, "d.tova").datas[0].sources
    assert [(s.name, s.path, s.loc.line) for s in sources] == [
        ("users", "data/users.csv", 2), ("remote", "https://x.com/r.json", 3),
        ("computed", None, 4), ("other", None, 5),
    ]


@pytest.mark.parametrize(
    "src, kind, value",
    [
        ('"text"', "string", "text"),
        ("'text'", "string", "text"),
        ('"a\\tb"', "string", "a\tb"),
        ("42", "int", 42),
        ("1_000", "int", 1000),
        ("0x10", "int", 16),
        ("1.5", "float", 1.5),
        ("true", "bool", True),
        ("false", "bool", False),
        ("nil", "nil", None),
        ("-1", "expr", None),
        ("some_name", "expr", None),
        ('env("X")', "expr", None),
        ('"a{b}c"', "expr", None),
        ("1 + 2", "expr", None),
        ('"a" + "b"', "expr", None),
        ("{ a: 1 }", "expr", None),
        ("fn(x) x * 2", "expr", None),
    ],
)
def test_deploy_value_kinds(src: str, kind: str, value: object) -> None:
    parsed = parse_source(f'deploy "p" {{\n  key: {src}\n  next: 1\n}}', "v.tova")
    f_key, f_next = parsed.deploys[0].body.fields
    assert (f_key.key, f_key.value.kind, f_key.value.value, f_key.value.text) == ("key", kind, value, src)
    assert (f_next.key, f_next.value.value) == ("next", 1)


def test_deploy_array_value() -> None:
    parsed = parse_source('deploy "p" { hosts: ["a", 2, x, [true]] }', "a.tova")
    v = parsed.deploys[0].body.fields[0].value
    assert v.kind == "array" and v.text == '["a", 2, x, [true]]'
    assert [(e.kind, e.value if e.kind != "array" else None) for e in v.value] == [
        ("string", "a"), ("int", 2), ("expr", None), ("array", None),
    ]
    assert isinstance(v.value[3].value[0], Value) and v.value[3].value[0].value is True


def test_deploy_separators_and_sub_block_commas() -> None:
    src = 'deploy "p" { server: "a"; domain: "b" instances: 2\n env { A: "1", B: "2" C: 3 } }'
    body = parse_source(src, "s.tova").deploys[0].body
    assert fields(body) == {"server": "a", "domain": "b", "instances": 2}
    assert fields(body.blocks[0].body) == {"A": "1", "B": "2", "C": 3}


def test_two_deploy_blocks_of_one_name_are_both_returned_in_order() -> None:
    src = 'deploy "prod" { server: "a" }\ndeploy "staging" { server: "b" }\ndeploy "prod" { domain: "c" }'
    parsed = parse_source(src, "m.tova")
    assert [(d.name, fields(d.body)) for d in parsed.deploys] == [
        ("prod", {"server": "a"}), ("staging", {"server": "b"}), ("prod", {"domain": "c"}),
    ]


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "src, message, line, col",
    [
        ('deploy {\n  server: "a"\n}\n', "needs a name", 1, 8),
        ("x = 1\ndeploy prod { }", "must be a quoted string", 2, 8),
        ('deploy "p{x}" { }', "plain string", 1, 8),
        ('deploy "p" {\n  server: "a",\n  domain: "b"\n}', "not separated by commas", 2, 14),
        ('deploy "p" {\n  server "a"\n}', "needs ':'", 2, 10),
        ('deploy "p" {\n  server\n}', "needs ':'", 2, 3),
        ('deploy "p" {\n  server:\n}', "missing value", 3, 1),
        ('deploy "p" { memory: 512mb }', "is not a value", 1, 22),
        ('deploy "p" { "x" }', "expected a field name", 1, 14),
        ('deploy "p" {\n  server: "a"\n', "never closed", 1, 12),
        ('server {\n  x = "abc\n}\n', "unterminated string", 2, 7),
        ("x = 1\n  /* open /* nested */\n", "unterminated block comment", 2, 3),
        ("data {\n  r = /abc\n}", "unterminated regex", 2, 7),
        # a `}` inside a tag closes the server block: the compiler's parser fails there
        ('server {\n  x = 1\n<a b=> }\n/* { */ c>"t"</a>\n', "closes a bracket opened before it", 3, 1),
        # ...reported once the file is read: a lexical error after it comes first
        ('server {\n  x = 1\n<a b=> }\n/* { */ c>"t"</a>\ny = "open\n', "unterminated string", 5, 5),
    ],
)
def test_syntax_errors_have_exact_locations(src: str, message: str, line: int, col: int) -> None:
    with pytest.raises(TovaSyntaxError) as info:
        parse_source(src, "src/app.tova")
    err = info.value
    assert message in err.message
    assert err.loc is not None and (err.loc.file, err.loc.line, err.loc.col) == ("src/app.tova", line, col)
    lines = src.split("\n")
    assert err.source_line == (lines[line - 1] if line <= len(lines) else "")
    assert err.hint
    rendered = err.render()
    assert rendered.startswith(f"src/app.tova:{line}:{col}: ") and "hint: " in rendered


def test_valid_but_unusual_code_is_skipped() -> None:
    src = '''
    @decorator
    fn f<T>(x: Array<T>) -> T { x[0] }
    type Shape = Circle(r: Float) | Rect(w: Float, h: Float)
    match x { 1..=5 => "a", _ => "b" }
    a = b ?? c |> d
    server { db { ...defaults, path: "x.db" } cors { origins: ["*"] } }
    concurrent cancel_on_error { spawn a() }
    '''
    parsed = parse_source(src, "u.tova")
    assert [f.key for f in parsed.servers[0].dbs[0].fields] == ["path"]
