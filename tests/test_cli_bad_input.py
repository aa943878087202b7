"""`lit run` refuses bad input before anything starts: one clear line on stderr, exit code 2, no run dir."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import APPS, LitRunner

pytestmark = pytest.mark.timeout(60)

GOOD_APP = """\
import lit as L


class Echo(L.LightningWork):
    def run(self):
        print("hi")


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.echo = Echo()

    def run(self):
        self.echo.run()
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "apps_bad" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _assert_refused(lit: LitRunner, result: subprocess.CompletedProcess[str], *needles: str,
                    traceback_ok: bool = False) -> str:
    """Exit 2, no run dir, and the message (its last line) names every needle. Returns the error line."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    if not traceback_ok:
        assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
        assert "Traceback" not in result.stderr
    error = lines[-1]
    for needle in needles:
        assert needle in error, f"{needle!r} not in {error!r}"
    assert lit.run_dirs() == [], "a refused run created a run directory"
    assert result.stdout.strip() == ""
    return error


def test_missing_file(lit: LitRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope_app.py"
    result = lit.run(missing)
    _assert_refused(lit, result, "nope_app.py")


def test_not_a_python_file(lit: LitRunner, tmp_path: Path) -> None:
    result = lit.run(tmp_path)
    _assert_refused(lit, result)


def test_syntax_error_shows_file_and_line(lit: LitRunner, tmp_path: Path) -> None:
    app = _write(tmp_path, "broken_app.py", "import lit as L\n\n\ndef oops(:\n    pass\n")
    result = lit.run(app)
    error = _assert_refused(lit, result, "broken_app.py")
    assert "4" in error.split("broken_app.py", 1)[1][:8], error
    assert "syntax" in error.lower()


def test_no_lightning_app(lit: LitRunner, tmp_path: Path) -> None:
    app = _write(tmp_path, "noapp_app.py", GOOD_APP)
    result = lit.run(app)
    _assert_refused(lit, result, "noapp_app.py", "LightningApp")


def test_more_than_one_lightning_app(lit: LitRunner, tmp_path: Path) -> None:
    app = _write(tmp_path, "twoapps_app.py",
                 GOOD_APP + "\n\napp = L.LightningApp(Flow())\nother = L.LightningApp(Flow())\n")
    result = lit.run(app)
    error = _assert_refused(lit, result, "twoapps_app.py")
    assert "more than one" in error.lower() or "2" in error
    assert "app" in error and "other" in error


def test_unknown_cloud_compute_name(lit: LitRunner, tmp_path: Path) -> None:
    text = GOOD_APP.replace("self.echo = Echo()", 'self.echo = Echo(cloud_compute=L.CloudCompute("tpu-huge"))')
    app = _write(tmp_path, "badcompute_app.py", text + "\n\napp = L.LightningApp(Flow())\n")
    result = lit.run(app)
    error = _assert_refused(lit, result, "tpu-huge", traceback_ok=True)
    for valid in ("cpu", "gpu", "cpu-small", "gpu-fast"):
        assert valid in error


def test_app_file_raising_at_import(lit: LitRunner, tmp_path: Path) -> None:
    app = _write(tmp_path, "raising_app.py", "import lit as L\n\nraise RuntimeError('cannot start 42')\n")
    result = lit.run(app)
    error = _assert_refused(lit, result, "raising_app.py", "cannot start 42", traceback_ok=True)
    assert error.startswith("error:")
    assert 'raising_app.py", line 3' in result.stderr


@pytest.mark.parametrize("pair", ["NOEQUALS", "1BAD=x", "=value", "BAD-NAME=1"])
def test_bad_env_syntax(lit: LitRunner, pair: str) -> None:
    result = lit.run(APPS / "solo_app.py", "--env", pair)
    _assert_refused(lit, result, "--env", pair)
    assert lit.obs() == [], "the app ran despite the bad --env"


def test_unknown_cloud_cluster(lit: LitRunner) -> None:
    result = lit.run(APPS / "solo_app.py", "--cloud", "no-such-cluster")
    _assert_refused(lit, result, "no-such-cluster")
    assert lit.obs() == []


def test_bad_run_name(lit: LitRunner) -> None:
    result = lit.run(APPS / "solo_app.py", "--name", "../escape")
    _assert_refused(lit, result, "--name")
    assert not (lit.home / "escape").exists()


def test_good_app_next_to_the_bad_ones_runs(lit: LitRunner, tmp_path: Path) -> None:
    """The control case: the same app text with one LightningApp runs and creates its run dir."""
    app = _write(tmp_path, "good_app.py", GOOD_APP + "\n\napp = L.LightningApp(Flow())\n")
    result = lit.run(app)
    assert result.returncode == 0, result.stderr
    assert [run.name.startswith("good_app-") for run in lit.run_dirs()] == [True]
