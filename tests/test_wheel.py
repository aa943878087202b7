"""The wheel installs under the `lit` namespace only, and runs the hello app from a clean venv."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, timeout=300)
    (found,) = out.glob("lit-*.whl")
    return found


def test_wheel_puts_nothing_generic_in_site_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"lit", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for package in ("lit/runtime/agent.py", "lit/provisioner/__init__.py", "lit/stacks/__init__.py"):
        assert package in names
    assert not any(name.startswith(("runtime/", "stacks/", "provisioner/", "tests/")) for name in names)


@pytest.mark.timeout(600)
def test_wheel_in_a_clean_venv_runs_the_hello_app(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=540)
    env = {**os.environ, "LIT_HOME": str(tmp_path / "home")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([str(env_dir / "bin" / "lit"), "run", str(ROOT / "examples" / "hello_app.py")],
                            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "running code A on a CPU machine" in result.stdout
    assert "running code B on a GPU machine" in result.stdout
    where = subprocess.run([str(python), "-c", "import lit.runtime.agent as a; print(a.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path, env=env)
    assert str(env_dir) in where.stdout
