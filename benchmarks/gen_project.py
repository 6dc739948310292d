"""Generate a large, realistic Tova project for the front-end benchmark.

Each file mixes what the reader must skip without losing its place (functions, JSX,
style blocks, strings with interpolation, regexes, nested comments) with the blocks it
must understand (server, browser, security, data, deploy)."""

from __future__ import annotations

import random
from pathlib import Path

FUNCS = '''
/// Formats a price for module {i}.
fn format_price_{i}(amount, currency) {{
  ratio = amount / 100
  pattern = /^\\{{[a-z]+\\}}"$/g
  label = "Price {{amount}} in {{currency}} ({{ratio * 2}})"
  raw = r"C:\\tova\\{i}\\"
  single = 'no {{interpolation}} here'
  match currency {{
    "EUR" => "€{{ratio}}"
    "USD" => "${{ratio}}"
    _ => "{{currency}} {{ratio}}"
  }}
}}

/* block comment /* nested {i} */ still a comment: server {{ db {{ type: "redis" }} }} */
type Item{i} {{
  id: Int
  name: String
  tags: [String]
}}

fn summarize_{i}(items) {{
  total = 0
  for item in items {{
    if item.tags.length > 0 and not item.hidden {{
      total = total + item.price / 3
    }} else {{
      total = total - 1
    }}
  }}
  """Summary {i}: {{total}} items, "quoted" text"""
}}
'''

SERVER = '''
server "api{i}" {{
  db {{ driver: "postgres" }}
  route GET "/api/{i}/items" => fn(req) {{ db.query("SELECT * FROM items_{i} WHERE id = $1", [req.params.id]) }}
  route POST "/api/{i}/items" => fn(req) {{ create_item(req.body) }}
  routes "/v{i}" {{
    routes "/nested" {{
      sse "/events{i}" fn(params) {{ send({{ data: "tick {{Date.now()}}" }}) }}
      route GET "/ping" => fn(req) {{ text("pong") }}
    }}
  }}
  ws {{
    on_open fn(socket) {{ socket.send("welcome {{socket.id}}") }}
    on_message fn(socket, msg) {{ broadcast(msg) }}
  }}
}}
'''

BROWSER = '''
browser {{
  state count_{i} = 0
  computed doubled_{i} = count_{i} * 2
  component Counter{i} {{
    <div class="counter">
      <h2>"Counter {i} // clicks: {{count_{i}}}"</h2>
      <button on:click={{fn() count_{i} += 1}}>"Add one"</button>
    </div>
  }}
  style {{
    .counter {{ background: url(https://example.com/bg{i}.png); padding: 4px; }}
    h2::after {{ content: "»"; }}
  }}
}}
'''

SECURITY = '''
security {
  auth jwt { secret: env("JWT_SECRET"), expires: 3600 }
  cors { origins: ["https://app.example.com"], credentials: true }
}

data {
  source products = read("https://example.com/products.csv")
  refresh products every 10.minutes
}

deploy "prod" {
  server: "root@203.0.113.50"
  domain: "big.example.com"
  instances: 3
  memory: "1gb"
  env { NODE_ENV: "production" }
  db { redis { maxmemory: "256mb" } }
}
'''


def generate(root: Path, files: int = 200, target_lines: int = 50_000, seed: int = 7) -> int:
    rnd = random.Random(seed)
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    (root / "tova.toml").write_text('[project]\nname = "big"\nentry = "src"\n')
    per_file = target_lines // files
    total = 0
    for n in range(files):
        parts: list[str] = [f"// module {n}\n"]
        lines = 1
        i = n * 1000
        while lines < per_file:
            kind = rnd.random()
            chunk = (SERVER if kind < 0.1 else BROWSER if kind < 0.3 else FUNCS).format(i=i)
            parts.append(chunk)
            lines += chunk.count("\n")
            i += 1
        if n == 0:
            parts.append(SECURITY)
            lines += SECURITY.count("\n")
        (src / f"module_{n:03d}.tova").write_text("".join(parts))
        total += lines
    return total


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tova-big")
    print(generate(out), "lines in", out)
