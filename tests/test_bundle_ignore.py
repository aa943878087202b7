"""Which files of an app folder ship in its bundle: git's own .gitignore rules, plus .litignore."""

from __future__ import annotations

from pathlib import Path

from lit.provisioner.bundle import IgnoreRules, _app_files


def shipped(folder: Path, files: dict[str, str]) -> set[str]:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {rel for rel, _ in _app_files(folder)}


def test_a_star_does_not_reach_into_subfolders() -> None:
    rules = IgnoreRules(["a/*.py"])
    assert rules.ignored("a/c.py", False)
    assert not rules.ignored("a/b/c.py", False)


def test_a_backslash_escapes_a_leading_hash(tmp_path: Path) -> None:
    files = shipped(tmp_path, {".gitignore": "\\#file\n# a comment\n", "#file": "", "file": "", "app.py": ""})
    assert files == {".gitignore", "file", "app.py"}


def test_negation_re_includes_what_an_earlier_line_ignored(tmp_path: Path) -> None:
    files = shipped(tmp_path, {".gitignore": "*.log\n!keep.log\n", "a.log": "", "keep.log": "", "app.py": ""})
    assert files == {".gitignore", "keep.log", "app.py"}


def test_a_trailing_slash_matches_folders_only(tmp_path: Path) -> None:
    files = shipped(tmp_path, {".gitignore": "data/\n", "data/big.bin": "", "sub/data/x.bin": "",
                               "src/data": "a file named data", "app.py": ""})
    assert files == {".gitignore", "src/data", "app.py"}


def test_a_leading_slash_anchors_to_the_app_folder(tmp_path: Path) -> None:
    files = shipped(tmp_path, {".gitignore": "/out.txt\n", "out.txt": "", "sub/out.txt": "", "app.py": ""})
    assert files == {".gitignore", "sub/out.txt", "app.py"}


def test_double_star_matches_any_depth(tmp_path: Path) -> None:
    files = shipped(tmp_path, {".gitignore": "**/cache/*.bin\n", "cache/a.bin": "", "x/y/cache/b.bin": "",
                               "x/y/cache/c.txt": "", "app.py": ""})
    assert files == {".gitignore", "x/y/cache/c.txt", "app.py"}


def test_only_the_app_folders_own_gitignore_counts(tmp_path: Path) -> None:
    # A .gitignore in a subfolder ships as a plain file; its lines do not apply (bundles have always worked so).
    files = shipped(tmp_path, {"sub/.gitignore": "*.csv\n", "sub/a.csv": "", "app.py": ""})
    assert files == {"sub/.gitignore", "sub/a.csv", "app.py"}


def test_litignore_adds_to_gitignore_and_may_re_include(tmp_path: Path) -> None:
    files = shipped(tmp_path, {".gitignore": "*.log\n", ".litignore": "weights/\n!wanted.log\n",
                               "a.log": "", "wanted.log": "", "weights/w.bin": "", "app.py": ""})
    assert files == {".gitignore", ".litignore", "wanted.log", "app.py"}


def test_always_ignored_folders_and_files(tmp_path: Path) -> None:
    files = shipped(tmp_path, {".git/HEAD": "", ".venv/bin/python": "", "pkg/__pycache__/m.pyc": "",
                               "pkg/m.pyc": "", "pkg/m.py": "", "app.py": ""})
    assert files == {"pkg/m.py", "app.py"}
