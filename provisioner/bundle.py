"""Code bundles: the app's folder plus lit's own runtime, as one content-addressed tar.

The same content gives the same bytes (sorted entries, fixed times and owners), so its sha256 names it and
a host that already has a bundle is not sent it again.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pathspec

ALWAYS_IGNORED = (".git/", ".hg/", ".svn/", "__pycache__/", "*.pyc", ".venv/", "venv/", ".mypy_cache/",
                  ".pytest_cache/", ".ruff_cache/", ".DS_Store")
MAX_BUNDLE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Bundle:
    sha256: str
    data: bytes
    app_relpath: str  # the app file, relative to the bundle's app/ folder
    requirements: str  # requirements.txt text ("" if none)

    @property
    def size(self) -> int:
        return len(self.data)


class IgnoreRules:
    """Which paths of the app folder stay home, by git's own rules: pathspec's GitIgnoreSpec follows git where git
    and its documentation differ (e.g. `a/*.py` does not reach into a/b/, `\\#` escapes a leading `#`)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.spec = pathspec.GitIgnoreSpec.from_lines(list(lines))

    @classmethod
    def for_folder(cls, folder: Path) -> IgnoreRules:
        """ALWAYS_IGNORED, then the folder's .gitignore, then its .litignore, as one list where the last match wins:
        a .litignore can re-include (`!`) what the .gitignore or ALWAYS_IGNORED leaves out. Only the app folder's
        own files count; .gitignore files in subfolders ship as plain files."""
        lines = list(ALWAYS_IGNORED)
        for name in (".gitignore", ".litignore"):
            file = folder / name
            if file.is_file():
                lines.extend(file.read_text(errors="replace").splitlines())
        return cls(lines)

    def ignored(self, relpath: str, is_dir: bool) -> bool:
        # A trailing slash is how gitignore matching tells a folder from a file (for `dir/` patterns).
        return self.spec.match_file(relpath + "/" if is_dir else relpath)


def _app_files(folder: Path) -> list[tuple[str, Path]]:
    rules = IgnoreRules.for_folder(folder)
    out: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        dirs[:] = sorted(d for d in dirs if not rules.ignored(rel_root + d, True))
        for name in sorted(files):
            rel = rel_root + name
            path = Path(root) / name
            if not rules.ignored(rel, False) and path.is_file():
                out.append((rel, path))
    return out


# What hosts need of lit: the agent and the user's `import lit`. The CLI, the provisioner and the stacks run only
# on the operator's machine. Everything else under these packages ships, subpackages included, found by walking.
SHIPPED_PACKAGES = ("lit", "lit.runtime", "lit.app")
NOT_SHIPPED = frozenset({"lit.cli", "lit.provisioner", "lit.stacks"})


def package_files(name: str, folder: Path, skip: frozenset[str] = NOT_SHIPPED) -> list[tuple[str, Path]]:
    """(arcname, path) of every module of package `name` in `folder` and of its subpackages (folders with an
    __init__.py), minus the dotted names in `skip`."""
    out: list[tuple[str, Path]] = []
    prefix = name.replace(".", "/")
    for path in sorted(folder.iterdir()):
        dotted = f"{name}.{path.stem if path.is_file() else path.name}"
        if dotted in skip:
            continue
        if path.is_file() and path.suffix == ".py":
            out.append((f"{prefix}/{path.name}", path))
        elif path.is_dir() and (path / "__init__.py").is_file():
            out += package_files(dotted, path, skip)
    return out


def _lit_files() -> list[tuple[str, Path]]:
    found: dict[str, Path] = {}
    for name in SHIPPED_PACKAGES:
        package = importlib.import_module(name)
        for folder in package.__path__:  # an editable install maps lit.runtime to runtime/, a wheel to lit/runtime/
            for arcname, path in package_files(name, Path(folder)):
                found.setdefault(arcname, path)
    return sorted(found.items())


def pip_wheel() -> Optional[Path]:
    """The newest pip wheel of this machine's Python, for hosts whose python3 has no ensurepip (stock Ubuntu and
    Debian images: python3-venv is not installed, so `python3 -m venv` fails there). It is where ensurepip keeps
    it: CPython's ensurepip/_bundled, or Debian's and Ubuntu's /usr/share/python-wheels (python3-pip-whl)."""
    folders = [Path("/usr/share/python-wheels")]
    try:
        import ensurepip

        folders.append(Path(ensurepip.__file__).parent / "_bundled")
    except ImportError:
        pass

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) if part.isdigit() else 0 for part in path.name.split("-")[1].split("."))

    return max((w for folder in folders for w in folder.glob("pip-*-py3-none-any.whl")), key=version, default=None)


def build(app_file: Path) -> Bundle:
    app_file = app_file.resolve()
    folder = app_file.parent
    entries = [(f"app/{rel}", path) for rel, path in _app_files(folder)]
    entries += [(f"_lit/{rel}", path) for rel, path in _lit_files()]
    requirements = folder / "requirements.txt"
    wheel = pip_wheel() if requirements.is_file() else None
    if wheel is not None:  # the venv for requirements.txt on hosts without ensurepip (see launcher._venv)
        entries.append((f"_pip/{wheel.name}", wheel))
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname, path in sorted(entries):
            data = path.read_bytes()
            total += len(data)
            if total > MAX_BUNDLE_BYTES:
                from lit.runtime.errors import BadInput

                raise BadInput(f"the app folder {folder} is over {MAX_BUNDLE_BYTES >> 20} MB; list large files "
                               "in a .litignore")
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    return Bundle(hashlib.sha256(data).hexdigest(), data, app_file.name,
                  requirements.read_text() if requirements.is_file() else "")
