"""Issue 14 points 4, 5, 7 and 8: compiler output relative to the project, warnings
summarised (the rest in the journal and `--logs --build`), no step line printed twice, and
each step's elapsed time."""

from __future__ import annotations

import io

from tova.progress import Out, elapsed
from tova.server.buildlog import BuildOutput, relativize

ROOT = "/opt/tova/apps/x/build/deploy-q09ntazq/src"


def _warning(i: int) -> list[str]:
    """A warning as the real compiler (tova-lang 0.11.26) prints it."""
    return [
        f"warning: 'name{i}' is not defined\n",
        f"    --> {ROOT}/src/app.tova:{i}:5\n",
        "    |\n",
        f"  {i} |     name{i}()\n",
        "    |     ^^^^\n",
        "\n",
    ]


def test_relativize_strips_the_checkout():
    assert relativize(f"Error in app.tova: {ROOT}/src/app.tova:8:16 — Parse error", [ROOT]) == \
        "Error in app.tova: src/app.tova:8:16 — Parse error"
    assert relativize("nothing to do", [ROOT]) == "nothing to do"


def test_warnings_are_summarised_and_kept_whole():
    shown: list[str] = []
    hidden: list[str] = []
    b = BuildOutput(shown.append, hidden.append, roots=(ROOT,))
    lines = ["\n", "  Production build...\n"]
    for i in range(1, 21):
        lines += _warning(i)
    lines += ["  server.js\n", "  Production build complete.\n"]
    for line in lines:
        b.feed(line)
    assert b.warnings == 20
    # the first three, each as message + location, relative to the project
    assert [s for s in shown if "warning" in s] == [f"warning: 'name{i}' is not defined" for i in (1, 2, 3)]
    assert "    --> src/app.tova:1:5" in shown and "    --> src/app.tova:4:5" not in shown
    assert not any("^^^^" in s or "| " in s for s in shown)  # no code frames in the push
    assert "  Production build complete." in shown and "  server.js" in shown
    assert "warning: 'name20' is not defined" in hidden and "    --> src/app.tova:20:5" in hidden
    assert len(shown) + len(hidden) == len(lines)  # every line reaches the journal
    assert b.summary("prod") == ("20 compiler warnings; the first 3 are above, all of them in "
                                 "`tova deploy prod --logs --build`")
    assert b.text().count("warning:") == 20 and ROOT not in b.text()


def test_few_warnings_need_no_summary():
    b = BuildOutput(lambda s: None, lambda s: None)
    for line in _warning(1):
        b.feed(line)
    assert b.summary("prod") is None


def test_a_step_with_tool_output_is_not_printed_twice():
    buf = io.StringIO()
    out = Out(buf, color=False)
    ticks = iter([0.0, 2.34])
    out.clock = lambda: next(ticks)
    out.begin("Compiling .tova files...")
    out.passthrough("compiler says hi\n")
    out.end(True)
    text = buf.getvalue()
    assert text.count("Compiling .tova files...") == 1
    assert "→ done" in text and "✓ 2.3s" in text


def test_each_step_shows_its_elapsed_time():
    buf = io.StringIO()
    out = Out(buf, color=False)
    ticks = iter([10.0, 75.5])
    out.clock = lambda: next(ticks)
    out.begin("Provisioning system...")
    out.end(True)
    assert buf.getvalue().rstrip().endswith("✓ 1m05s")
    assert (elapsed(0.42), elapsed(12.4), elapsed(3600)) == ("0.4s", "12s", "60m00s")


def test_compiler_error_and_build_log_in_a_real_push(site):
    site.write_app("v1")
    site.commit()
    assert site.push().returncode == 0
    log = site.release("logs", "myapp", "--build", check=True).stdout
    assert "Production build" in log and str(site.root) not in log
    src = site.work / "src" / "app.tova"
    src.write_text(src.read_text().replace("fn home() {", "fn home() { for x in [1] { x }\n", 1))
    site.commit("syntax error")
    out = site.push().stderr
    assert "the build failed" in out, out
    assert "src/app.tova:2:" in out and "/build/deploy-" not in out, out
    assert out.count("Compiling .tova files...") == 1


def test_many_warnings_in_a_real_push_are_summarised(site, tmp_path):
    """Issue 14 point 5 through the hook: the compiler's warnings in the push are the first
    few and their count; `--logs --build` has every one, relative to the project."""
    from release_harness import COMPILER

    compiler = tmp_path / "warning-compiler"
    compiler.write_text(
        "#!/bin/sh\n"
        '[ "$1" = build ] && for i in 1 2 3 4 5 6; do\n'
        "  printf \"warning: 'name%s' is not defined\\n    --> %s/app.tova:%s:5\\n    |\\n"
        "  %s |     name%s()\\n    |     ^^^^\\n\\n\" \"$i\" \"$2\" \"$i\" \"$i\" \"$i\"\n"
        "done\n"
        f'exec {COMPILER} "$@"\n')
    compiler.chmod(0o755)
    site.write_app("v1")
    site.commit()
    res = site.push(extra_env={"TOVA_COMPILER": str(compiler)})
    assert res.returncode == 0 and site.current() == "v1", res.stderr
    out = res.stderr
    assert out.count("is not defined") == 3 and "'name3'" in out and "'name4'" not in out, out
    # six of ours and the fixture's own (no security block)
    assert "7 compiler warnings; the first 3 are above, all of them in `tova deploy prod --logs --build`" in out
    assert "^^^^" not in out and str(site.root) not in out
    log = site.release("logs", "myapp", "--build", check=True).stdout
    assert log.count("is not defined") == 6 and "--> src/app.tova:6:5" in log and str(site.root) not in log


def test_an_undeclared_browser_npm_import_fails_the_build_as_with_the_compiler(site):
    """The compiler bundles a browser block's npm imports at build time; only the declared
    dependencies are installed before it: the build fails with its message and a hint."""
    site.write_app("v1", extra='browser {\n  import ms from "ms"\n  component App {\n    <h1>"x"</h1>\n  }\n}\n')
    (site.work / "tova.toml").write_text('[project]\nname = "myapp"\nentry = "src"\n')
    site.commit()
    res = site.push()
    assert 'Could not resolve: "ms"' in res.stderr and "must be declared in tova.toml's [npm]" in res.stderr, res.stderr
    assert site.current() is None
