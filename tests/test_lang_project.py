"""Project discovery: tova.toml name and entry, src/, sorted files, dotfiles ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tova.errors import TovaError, TovaSyntaxError
from tova.lang.project import read_project
from tova.lang.reader import read_project as read_project_via_reader

DEPLOY = 'deploy "{name}" {{ server: "s" domain: "{name}.com" }}\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_src_sorted_and_skips_dotfiles_and_subdirs(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write(root / "src" / "b.tova", DEPLOY.format(name="b") + "server { }\n")
    write(root / "src" / "a.tova", DEPLOY.format(name="a"))
    write(root / "src" / ".hidden.tova", DEPLOY.format(name="hidden"))
    write(root / "src" / "mod" / "c.tova", DEPLOY.format(name="sub"))
    write(root / "src" / "notes.txt", DEPLOY.format(name="txt"))
    write(root / "top.tova", DEPLOY.format(name="top"))  # not read: src/ exists
    program = read_project(root)
    assert program.project_name == "shop"
    assert program.root == str(root.resolve())
    assert program.source_dir == str((root / "src").resolve())
    assert [Path(f).name for f in program.files] == ["a.tova", "b.tova"]
    assert [d.name for d in program.deploys] == ["a", "b"]
    assert [d.loc.file for d in program.deploys] == ["src/a.tova", "src/b.tova"]
    assert len(program.servers) == 1
    assert program.line_count == 3


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
    assert program.project_name == "myapp"
    assert program.source_dir == str((root / "app").resolve())
    assert [d.name for d in program.deploys] == ["prod"]
    assert read_project_via_reader(root) == program


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
    (tmp_path / "a.tova").write_bytes(b"x = '\xff'")
    with pytest.raises(TovaError, match="UTF-8"):
        read_project(tmp_path)
