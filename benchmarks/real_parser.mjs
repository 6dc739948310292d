// Runs the REAL Tova compiler's lexer and parser (a local checkout, never part of this
// repository) over .tova files, for comparison with tova-deploy's reader:
//   bun benchmarks/real_parser.mjs blocks FILE...        → JSON {file: [[kind, name, line]] | {error}}
//   bun benchmarks/real_parser.mjs time REPEAT FILE...   → JSON {seconds, lines} (best run, warm)
// TOVA_REAL_SRC names the checkout (default /work/tova-lang-src).
import { readFileSync } from "fs";

const src = process.env.TOVA_REAL_SRC || "/work/tova-lang-src";
const { Lexer } = await import(`${src}/src/lexer/lexer.js`);
const { Parser } = await import(`${src}/src/parser/parser.js`);

function parse(text, file) {
  const tokens = new Lexer(text, file).tokenize();
  return new Parser(tokens, file).parse();
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === "blocks") {
  const out = {};
  for (const file of rest) {
    try {
      const ast = parse(readFileSync(file, "utf-8"), file);
      out[file] = ast.body
        .filter((n) => n && typeof n.type === "string" && n.type.endsWith("Block") && n.type !== "BlockStatement")
        .map((n) => [n.type.slice(0, -5).toLowerCase(), n.name ?? null, n.loc ? n.loc.line : null]);
    } catch (e) {
      out[file] = { error: String(e.message).split("\n")[0] };
    }
  }
  console.log(JSON.stringify(out));
} else if (mode === "time") {
  const repeat = Number(rest[0]);
  const texts = rest.slice(1).map((f) => [f, readFileSync(f, "utf-8")]);
  let lines = 0;
  for (const [, t] of texts) lines += t.split("\n").length - (t.endsWith("\n") ? 1 : 0);
  let best = Infinity;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    for (const [f, t] of texts) {
      try { parse(t, f); } catch (e) { /* timing only */ }
    }
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  console.log(JSON.stringify({ seconds: best, lines }));
} else {
  console.error("usage: real_parser.mjs blocks FILE... | time REPEAT FILE...");
  process.exit(2);
}
