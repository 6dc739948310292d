"""Project discovery: tova.toml name and entry, src/, sorted files, dotfiles ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tova.errors import TovaError, TovaSyntaxError
from tova.lang.project import read_project

DEPLOY = 'deploy "{name}" {{ server: "s" domain: "{name}.com" }}\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_src_with_subfolders_sorted_and_skips_dotfiles(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root / "src" / "b.tova", DEPLOY.format(name="b") + "server { }\n")
    write(root / "src" / "a.tova", DEPLOY.format(name="a"))
    write(root / "src" / ".hidden.tova", DEPLOY.format(name="hidden"))
    write(root / "src" / ".git" / "x.tova", DEPLOY.format(name="dotdir"))
    write(root / "src" / "node_modules" / "pkg" / "x.tova", DEPLOY.format(name="npm"))
    write(root / "src" / "mod" / "c.tova", DEPLOY.format(name="sub"))
    write(root / "src" / "notes.txt", DEPLOY.format(name="txt"))
    write(root / "top.tova", DEPLOY.format(name="top"))  # not read: src/ exists
    program = read_project(root)
    assert program.project_name == "shop" and program.name_from == "folder"
    assert program.root == str(root.resolve())
    assert program.source_dir == str((root / "src").resolve())
    assert [str(Path(f).relative_to(root / "src")) for f in program.files] == ["a.tova", "b.tova", "mod/c.tova"]
    assert [d.name for d in program.deploys] == ["a", "b", "sub"]
    assert [d.loc.file for d in program.deploys] == ["src/a.tova", "src/b.tova", "src/mod/c.tova"]
    assert len(program.servers) == 1
    assert program.line_count == 4


def test_subfolder_server_code_reaches_the_plan(tmp_path: Path) -> None:
    """src/api/users.tova with a postgres db and ws belongs to the app (issue 9, point 2)."""
    write(tmp_path / "src" / "app.tova", DEPLOY.format(name="prod") + "server { }\n")
    write(tmp_path / "src" / "api" / "users.tova",
          'server {\n  db { driver: "postgres" }\n  ws { on_open fn(s) { s.send("hi") } }\n}\n')
    program = read_project(tmp_path)
    assert [d.fields[0].value.value for s in program.servers for d in s.dbs] == ["postgres"]
    assert sum(len(s.websockets) for s in program.servers) == 1


def test_one_function_decides_the_files_for_reader_and_build(tmp_path: Path) -> None:
    from tova.lang import sources
    from tova.server import pipeline

    assert pipeline.source_dir is sources.source_dir
    write(tmp_path / "tova.toml", '[project]\nentry = "app"\n')
    write(tmp_path / "main.tova", DEPLOY.format(name="root"))  # root files do not win
    write(tmp_path / "app" / "x.tova", DEPLOY.format(name="prod"))
    assert sources.source_dir(tmp_path) == (tmp_path / "app").resolve()
    assert read_project(tmp_path).source_dir == str((tmp_path / "app").resolve())


def test_entry_outside_the_project_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "p" / "tova.toml", '[project]\nentry = "../other"\n')
    write(tmp_path / "other" / "x.tova", DEPLOY.format(name="prod"))
    with pytest.raises(TovaError, match="outside the project"):
        read_project(tmp_path / "p")


def test_empty_entry_means_the_default(tmp_path: Path) -> None:
    write(tmp_path / "tova.toml", '[project]\nentry = ""\n')
    write(tmp_path / "src" / "x.tova", DEPLOY.format(name="prod"))
    assert read_project(tmp_path).source_dir == str((tmp_path / "src").resolve())


def test_project_root_when_no_src(tmp_path: Path) -> None:
    write(tmp_path / "app" / "main.tova", "x = 1\ny = 2")
    program = read_project(tmp_path / "app")
    assert program.source_dir == str((tmp_path / "app").resolve())
    assert program.line_count == 2


def test_tova_toml_name_and_entry(tmp_path: Path) -> None:
    root = tmp_path / "dir"
    write(root / "tova.toml", '[project]\nname = "myapp"\nentry = "app"\n')
    write(root / "app" / "main.tova", DEPLOY.format(name="prod"))
    write(root / "src" / "ignored.tova", DEPLOY.format(name="ignored"))
    program = read_project(str(root))
    assert program.project_name == "myapp" and program.name_from == "tova.toml"
    assert program.source_dir == str((root / "app").resolve())
    assert [d.name for d in program.deploys] == ["prod"]


def test_tova_toml_without_name_uses_directory(tmp_path: Path) -> None:
    root = tmp_path / "blog"
    write(root / "tova.toml", '[build]\noutput = ".tova-out"\n')
    write(root / "src" / "app.tova", "server { }")
    assert read_project(root).project_name == "blog"


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "tova.toml", "[project\nname = ")
    write(tmp_path / "src" / "app.tova", "")
    with pytest.raises(TovaError) as info:
        read_project(tmp_path)
    assert "tova.toml" in info.value.message and info.value.hint


def test_missing_entry_directory(tmp_path: Path) -> None:
    write(tmp_path / "tova.toml", '[project]\nentry = "nope"\n')
    with pytest.raises(TovaError, match="entry"):
        read_project(tmp_path)


def test_no_tova_files_is_an_error_with_hint(tmp_path: Path) -> None:
    write(tmp_path / "src" / ".only-hidden.tova", "")
    with pytest.raises(TovaError) as info:
        read_project(tmp_path)
    assert "no .tova files" in info.value.message and "src/" in info.value.hint


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(TovaError):
        read_project(tmp_path / "missing")


def test_syntax_error_names_file_relative_to_root(tmp_path: Path) -> None:
    write(tmp_path / "src" / "a.tova", "ok = 1\n")
    write(tmp_path / "src" / "b.tova", 'x = 1\ndeploy {\n}\n')
    with pytest.raises(TovaSyntaxError) as info:
        read_project(tmp_path)
    assert str(info.value.loc) == "src/b.tova:2:8"


def test_non_utf8_file_is_a_tova_error(tmp_path: Path) -> None:
    (tmp_path / "a.tova").write_bytes(b"x = 1\ny = '\xff'\n")
    with pytest.raises(TovaSyntaxError, match="UTF-8") as info:
        read_project(tmp_path)
    assert str(info.value.loc) == "a.tova:2:6"
    assert "y = '" in info.value.render()


def test_a_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    """On the server the project is a pushed checkout: never read (or quote) a file
    outside it through a link."""
    secret = write(tmp_path / "secret.txt", "TOP-SECRET { line\n")
    root = tmp_path / "p"
    write(root / "src" / "app.tova", DEPLOY.format(name="prod"))
    (root / "src" / "evil.tova").symlink_to(secret)
    with pytest.raises(TovaError, match="points outside the project") as info:
        read_project(root)
    assert "TOP-SECRET" not in info.value.render()
    (root / "src" / "evil.tova").unlink()
    (root / "src" / "lib").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(TovaError, match="points outside the project"):
        read_project(root)


def test_a_symlink_inside_the_project_is_followed(tmp_path: Path) -> None:
    write(tmp_path / "shared" / "x.tova", DEPLOY.format(name="shared"))
    write(tmp_path / "src" / "app.tova", DEPLOY.format(name="prod"))
    (tmp_path / "src" / "shared").symlink_to(tmp_path / "shared", target_is_directory=True)
    assert [d.name for d in read_project(tmp_path).deploys] == ["prod", "shared"]
