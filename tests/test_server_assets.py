"""static/: the browser build and public/, arranged the way Caddy serves them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tova.server.assets import arrange_static

COMPILER = Path(__file__).parent / "fixtures" / "tova-fixture-compiler"


def test_browser_build_and_public_become_static(tmp_path):
    project = tmp_path / "p"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.tova").write_text(
        'server {\n  fn healthz() { text("ok") }\n  route GET "/healthz" => healthz\n}\n'
        'browser {\n  component App {\n    <h1>"Hi"</h1>\n  }\n}\n')
    (project / "public" / "img").mkdir(parents=True)
    (project / "public" / "img" / "logo.svg").write_text("<svg/>")
    (project / "public" / "index.html").write_text("public's own index")
    out = tmp_path / "out"
    subprocess.run([str(COMPILER), "build", "src", "--production", "--output", str(out)], cwd=project,
                   check=True, capture_output=True)
    served = arrange_static(out, project / "public")
    script = next(p for p in served if p.startswith(".tova-out/client.") and not p.endswith(".min.js"))
    assert f'src="/{script}"' in (out / "static" / "index.html").read_text()  # the build's page wins
    assert {"index.html", "404.html", "200.html", "img/logo.svg"} <= set(served)
    # The server bundle stays out of what Caddy serves; server.js still runs from the root.
    assert not any(p.startswith("server") for p in served) and (out / "server.js").is_file()


def test_no_browser_and_no_public_serves_nothing(tmp_path):
    (tmp_path / "server.js").write_text("")
    assert arrange_static(tmp_path, tmp_path / "public") == []
    assert not (tmp_path / "static").exists()
