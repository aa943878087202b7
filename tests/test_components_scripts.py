"""Script works (lit.components.PopenPythonScript, TracerPythonScript): real `lit run`s of tests/script_apps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import LitCli

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "tests" / "script_apps"


@pytest.fixture
def cli(tmp_path: Path) -> LitCli:
    # Started in a folder of its own, not the app's: relative script paths are found in the app's folder.
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return LitCli(tmp_path, {**os.environ, "LIT_HOME": str(tmp_path / "home"), "PYTHONPATH": python_path,
                             "OBS": str(tmp_path / "obs.txt")})


def test_a_popen_script_runs_with_its_arguments_and_env_and_its_output_is_the_works_log(cli: LitCli) -> None:
    result = cli("run", str(APPS / "popen_app.py"))
    assert result.returncode == 0, result.stderr
    assert "count | args: --a 1" in result.stdout
    assert "count | line 29" in result.stdout and "count | GREETING=hi" in result.stdout
    assert "exit code 0" in result.stderr


def test_a_popen_scripts_non_zero_exit_fails_the_work_with_its_last_lines(cli: LitCli) -> None:
    cli.env["EXIT_CODE"] = "3"
    result = cli("run", str(APPS / "popen_app.py"))
    assert result.returncode == 1, result.stderr
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "scripts/count.py exited with code 3" in error, result.stderr
    assert "| line 29" in result.stderr and "| GREETING=hi" in result.stderr  # its last lines, in the failure
    assert "| line 5\n" not in result.stderr.split("its last lines:")[-1]  # only the last ones


def test_a_missing_script_is_one_clear_error_before_anything_runs(cli: LitCli, tmp_path: Path) -> None:
    app = tmp_path / "app" / "app.py"
    app.parent.mkdir()
    app.write_text("import lit as L\nfrom lit.components import PopenPythonScript\n\n\n"
                   "class Flow(L.LightningFlow):\n    def __init__(self):\n        super().__init__()\n"
                   "        self.s = PopenPythonScript('nowhere.py')\n\n    def run(self):\n        self.s.run()\n\n\n"
                   "app = L.LightningApp(Flow())\n")
    result = cli("run", str(app))
    assert result.returncode == 2, result.stderr
    assert "script nowhere.py: no such file" in result.stderr


def test_a_traced_script_has_its_methods_wrapped_and_its_outputs_published(cli: LitCli, tmp_path: Path) -> None:
    result = cli("run", str(APPS / "tracer_app.py"))
    assert result.returncode == 0, result.stderr
    # fit(data=[1, 2, 3]) is 2 per epoch: the tracer made it 3 epochs (6.0), and --lr=0.5 came from params.
    assert "train | fit returned 6.0" in result.stdout
    assert "train | best_score=3.0" in result.stdout
    assert (tmp_path / "obs.txt").read_text() == "3.0"  # best_score, a Payload, passed to another work


def test_a_tracer_wraps_methods_while_the_script_runs_and_restores_them(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from lit.runtime.components.scripts import Tracer

    (tmp_path / "tlib.py").write_text("class Model:\n    def fit(self, x):\n        return x\n\n"
                                      "    @classmethod\n    def make(cls):\n        return cls()\n")
    script = tmp_path / "script.py"
    script.write_text("import sys\nfrom tlib import Model\n\nresult = Model.make().fit(1)\nargs = sys.argv[1:]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import tlib

    original = tlib.Model.__dict__["fit"]
    tracer = Tracer()
    tracer.add_traced(tlib.Model, "fit", pre_fn=lambda self, x: ({"x": x}, (x + 1,), {}),
                      post_fn=lambda self, ret: ({"ret": ret}, ret * 10))
    tracer.add_traced(tlib.Model, "make")
    res = tracer.trace(str(script), "--flag")
    assert res["result"] == 20 and res["args"] == ["--flag"]  # arguments changed before, the result after
    [fit] = [entry["fit"][0] for entry in res["tracer_res"]["Model"] if "fit" in entry]
    assert fit["pre"] == {"x": 1} and fit["post"] == {"ret": 2}
    assert any("make" in entry for entry in res["tracer_res"]["Model"])
    assert tlib.Model.__dict__["fit"] is original and tlib.Model().fit(1) == 1  # restored
    assert isinstance(tlib.Model.__dict__["make"], classmethod)


def test_the_dag_of_scripts_example_runs(cli: LitCli) -> None:
    result = cli("run", str(REPO / "examples" / "dag_scripts_app.py"))
    assert result.returncode == 0, result.stderr
    assert "fit     | fitted y = 3.0x + 0.989 on 200 rows" in result.stdout
    assert "publish | published: y = 3.0x + 0.989" in result.stdout
