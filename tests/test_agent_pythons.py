"""The agent, and the lit package shipped with it, on the Pythons a machine may have: a cloud image brings its own
python3 (Ubuntu 22.04: 3.10, 24.04: 3.12), not lit's. Each interpreter found here (pyenv's 3.9 to 3.13) runs the
seed's apps' works, from a copy of exactly what the bundle ships (`_lit/`), with lit's orchestrator on this
Python. The bundle's unpack script runs under each one too.
"""

from __future__ import annotations

import glob
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from lit.provisioner import bundle as bundles
from lit.provisioner.shipping import EXTRACT
from lit.runtime.loader import load_app
from lit.runtime.orchestrator import Orchestrator
from lit.runtime.transport import LocalLauncher
from tests.support import require

pytestmark = pytest.mark.e2e  # agents on other interpreters

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def _version(python: str) -> tuple[int, int]:
    out = subprocess.run([python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                         capture_output=True, text=True, timeout=30, check=True).stdout.split()
    return int(out[0]), int(out[1])


def _pythons() -> list[str]:
    """One interpreter per minor version from 3.9 on, other than the one running the tests."""
    found: dict[tuple[int, int], str] = {}
    for path in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3"))) + \
            [p for p in (shutil.which(f"python3.{minor}") for minor in range(9, 15)) if p]:
        try:
            version = _version(path)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            continue
        if version >= (3, 9) and version != sys.version_info[:2]:
            found.setdefault(version, path)
    return [found[v] for v in sorted(found)]


PYTHONS = _pythons()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a machine gets in `_lit/`: lit's packages as the bundle lists them, nothing installed."""
    root = tmp_path_factory.mktemp("shipped")
    for rel, path in bundles._lit_files():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return root


def test_other_pythons_are_found_here() -> None:
    require(None if PYTHONS else "no Python 3.9+ besides this one on this machine (pyenv's versions or python3.N on "
            "PATH)", "the agent on other Pythons")
    assert all(os.access(p, os.X_OK) for p in PYTHONS)


VERSION_APP = """\
import sys

import lit as L


class Where(L.LightningWork):
    def run(self):
        print("python %d.%d from %s" % (sys.version_info[0], sys.version_info[1], L.__file__))


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.where = Where()

    def run(self):
        self.where.run()
        if self.where.has_succeeded:
            self.stop("done")


app = L.LightningApp(Flow())
"""


@pytest.mark.parametrize("python", PYTHONS, ids=lambda p: "py" + "".join(map(str, _version(p))))
@pytest.mark.parametrize("example", ["version", "hello_app.py", "train_analyze_app.py"])
@pytest.mark.parametrize("forkserver", ["1", "0"], ids=["forkserver", "fresh"])
def test_works_run_on_another_python(python: str, example: str, forkserver: str, shipped: Path,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYTHONPATH", str(shipped))  # the agents import lit from the shipped copy only
    monkeypatch.setenv("LIT_FORKSERVER", forkserver)
    monkeypatch.setenv("LIT_HOME", str(tmp_path / "home"))
    if example == "version":
        app_file = tmp_path / "version_app.py"
        app_file.write_text(VERSION_APP)
    else:
        app_file = EXAMPLES / example
    lines: list[tuple[str, str]] = []

    class Collect:
        def log(self, work: str, stream: str, line: str) -> None:
            lines.append((work, line))

        def status(self, work: str, status: Any) -> None:
            return None

        def progress(self, work: str, step: str) -> None:
            return None

    outcome = Orchestrator(load_app(str(app_file)), app_file, tmp_path / "run", reporter=Collect(),
                           launcher=LocalLauncher(python=python)).run()
    assert outcome.exit_code == 0, (outcome.message, outcome.traceback, lines, capfd.readouterr())
    text = "\n".join(line for _, line in lines)
    if example == "version":
        major, minor = _version(python)
        assert f"python {major}.{minor} from {shipped}" in text, text
    elif example == "hello_app.py":
        assert "running code A on a CPU machine" in text and "running code B on a GPU machine" in text
    else:
        assert "mean absolute error on held-out data" in text  # the model file crossed between the works
    logs = "".join(p.read_text() for p in (tmp_path / "run" / "logs").glob("*.log"))
    assert "Traceback" not in logs, logs


@pytest.mark.parametrize("python", PYTHONS, ids=lambda p: "py" + "".join(map(str, _version(p))))
def test_the_unpack_script_runs_on_another_python(python: str, tmp_path: Path) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body, mode in (("app/app.py", b"print('hi')\n", 0o644), ("app/run.sh", b"#!/bin/sh\n", 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), mode
            tar.addfile(info, io.BytesIO(body))
    target = tmp_path / "bundles" / "abc"
    target.parent.mkdir()
    done = subprocess.run([python, "-c", EXTRACT, str(target)], input=data.getvalue(), capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert (target / ".complete").exists() and (target / "app" / "app.py").read_text() == "print('hi')\n"
    assert os.access(target / "app" / "run.sh", os.X_OK)
    assert not list(target.parent.glob("*.tmp-*"))
