"""Shared helpers for the end-to-end tests: run `lit run` as a subprocess with a private LIT_HOME.

Test apps live in tests/apps/. They read parameters from env vars passed with `--env K=V` and write
observations (JSON lines, see tests/apps/litobs.py) to the file named by $LIT_TEST_OBS.

The markers (pyproject.toml) are set here from the fixtures a test uses, see pytest_collection_modifyitems:
`pytest -m "not e2e"` is the fast layer, which runs in seconds without root.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, Union

import pytest

APPS = Path(__file__).resolve().parent / "apps"
REPO = Path(__file__).resolve().parent.parent
BOX_SPLIT = re.compile(r"│")


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2:].split()[0]
    return state not in (b"Z", b"X")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class LitRunner:
    """Runs `python -m lit run APP ...` with LIT_HOME, the observation file and a cwd in tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.home = tmp_path / "lit_home"
        self.obs_file = tmp_path / "obs.jsonl"
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir()
        self._popens: list[subprocess.Popen[Any]] = []
        self._pids: set[int] = set()  # every process of ours (lit and the works), for cleanup

    # -- building the command ---------------------------------------------------------------------
    def app_path(self, app: Union[str, Path]) -> str:
        path = Path(app)
        if not path.is_absolute() and not path.exists() and (APPS / path).exists():
            path = APPS / path
        return str(path)

    def command(self, app: Union[str, Path], *args: str, env: Optional[dict[str, str]] = None) -> list[str]:
        cmd = [sys.executable, "-m", "lit", "run", self.app_path(app), *args]
        for key, value in (env or {}).items():
            cmd += ["--env", f"{key}={value}"]
        return cmd

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIT_")}
        env.update(LIT_HOME=str(self.home), LIT_TEST_OBS=str(self.obs_file), COLUMNS="200",
                   PYTHONIOENCODING="utf-8", NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
        return env

    # -- running ----------------------------------------------------------------------------------
    def run(self, app: Union[str, Path], *args: str, env: Optional[dict[str, str]] = None,
            timeout: float = 20.0, process_env: Optional[dict[str, str]] = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run lit to the end (failing the test after `timeout` s: a hang guard, not a measure; see benchmarks/).

        `env` becomes `--env K=V` options; `process_env` overrides lit's own environment (e.g. LIT_HOME).
        """
        cmd = self.command(app, *args, env=env)
        proc = self.popen_raw(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, process_env=process_env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.cleanup()
            out, err = proc.communicate()
            pytest.fail(f"lit did not end within {timeout} s: {cmd}\nstdout:\n{out}\nstderr:\n{err}")
        result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        self._pids.update(self.observed_pids())
        return result

    def popen_raw(self, cmd: list[str], process_env: Optional[dict[str, str]] = None,
                  **kwargs: Any) -> subprocess.Popen[str]:
        env = {**self.environ(), **(process_env or {})}
        proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, text=True, encoding="utf-8",
                                errors="replace", start_new_session=True, **kwargs)
        self._popens.append(proc)
        self._pids.add(proc.pid)
        return proc

    def start(self, app: Union[str, Path], *args: str,
              env: Optional[dict[str, str]] = None) -> subprocess.Popen[str]:
        """Start lit in its own session (so a signal reaches only it); output goes to files."""
        with open(self.tmp_path / "lit.stdout", "w") as out, open(self.tmp_path / "lit.stderr", "w") as err:
            return self.popen_raw(self.command(app, *args, env=env), stdout=out, stderr=err)

    def output(self) -> tuple[str, str]:
        """stdout and stderr of the process started with start()."""
        return ((self.tmp_path / "lit.stdout").read_text(errors="replace"),
                (self.tmp_path / "lit.stderr").read_text(errors="replace"))

    # -- observations -----------------------------------------------------------------------------
    def obs(self, event: Optional[str] = None) -> list[dict[str, Any]]:
        if not self.obs_file.exists():
            return []
        records = [json.loads(line) for line in self.obs_file.read_text().splitlines() if line.strip()]
        return [r for r in records if event is None or r["event"] == event]

    def observed_pids(self) -> set[int]:
        pids: set[int] = set()
        for record in self.obs():
            for key, value in record.items():
                if (key == "pid" or key.endswith("_pid")) and isinstance(value, int):
                    pids.add(value)
        return pids

    def wait_for(self, event: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.obs(event)
            if len(found) >= count:
                self._pids.update(self.observed_pids())
                return found
            time.sleep(0.05)
        pytest.fail(f"no {count} {event!r} observations within {timeout} s: {self.obs()}")

    def runs_dir(self) -> Path:
        return self.home / "runs"

    def run_dirs(self) -> list[Path]:
        runs = self.runs_dir()
        return sorted(runs.iterdir()) if runs.exists() else []

    # -- cleanup ----------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """SIGKILL what we started and what our apps reported, if still alive (and still ours)."""
        self._pids.update(self.observed_pids())
        me = os.getpid()
        for pid in sorted(self._pids):
            if pid == me or not pid_alive(pid):
                continue
            cmd = _cmdline(pid)
            if "lit" in cmd or "sleep" in cmd or "python" in cmd:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for proc in self._popens:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def lit(tmp_path: Path) -> Iterator[LitRunner]:
    runner = LitRunner(tmp_path)
    try:
        yield runner
    finally:
        runner.cleanup()


@pytest.fixture
def lit_home(lit: LitRunner) -> Path:
    return lit.home


@pytest.fixture
def run_lit(lit: LitRunner) -> Any:
    """run_lit(app, *args, env=None, timeout=20) -> CompletedProcess."""
    return lit.run


def table_rows(stderr: str) -> dict[str, list[str]]:
    """The rows of the summary table on stderr, by work name: [work, compute, status, calls, wall time]."""
    rows: dict[str, list[str]] = {}
    for line in stderr.splitlines():
        if "│" not in line or "┃" in line:  # data rows only (the header uses heavy bars)
            continue
        cells = [c.strip() for c in BOX_SPLIT.split(line)[1:-1]]
        if len(cells) == 5 and cells[0]:
            rows[cells[0]] = cells
    return rows


def prefixed(text: str, work: str) -> list[str]:
    """The lines of `text` that lit printed for `work` ("work | line"), without the prefix."""
    pattern = re.compile(rf"^{re.escape(work)} *\| ?(.*)$")
    return [m.group(1) for m in map(pattern.match, text.splitlines()) if m]


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """shared_run(app, *args, env=None) -> (runner, result): one run per distinct command in a module.

    For tests that only read a run's output: several tests share one (slow) run of the same app.
    """
    cache: dict[tuple[Any, ...], tuple[LitRunner, subprocess.CompletedProcess[str]]] = {}

    def run(app: Union[str, Path], *args: str,
            env: Optional[dict[str, str]] = None) -> tuple[LitRunner, subprocess.CompletedProcess[str]]:
        key = (str(app), args, tuple(sorted((env or {}).items())))
        if key not in cache:
            runner = LitRunner(tmp_path_factory.mktemp("shared"))
            cache[key] = (runner, runner.run(app, *args, env=env))
        return cache[key]

    try:
        yield run
    finally:
        for runner, _ in cache.values():
            runner.cleanup()


# -- markers ----------------------------------------------------------------------------------------
# A fixture whose body brings up the SSH test bed or the fake cloud (both need root: namespaces, bridges, mounts).
_TEST_BED_CALLS = frozenset({"testbed_fixture", "fakecloud_fixture", "k8s_cluster_fixture"})
# This file's fixtures that start `lit run` (and so the works' agents) as a subprocess.
_LIT_RUN_FIXTURES = frozenset({"lit", "shared_run"})


def _brings_up_a_test_bed(func: Any) -> bool:
    """Whether a fixture function calls testbed_fixture/fakecloud_fixture (imported at module level or inside)."""
    code = getattr(func, "__code__", None)
    return code is not None and bool(_TEST_BED_CALLS & {*code.co_names, *code.co_varnames})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag each test from the fixtures it uses: the test bed or the fake cloud make it `e2e` and `root`, a `lit run`
    subprocess makes it `e2e`. A test that needs root is never in the fast layer: `root` implies `e2e`."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = [d for ds in (info.name2fixturedefs.values() if info else ()) for d in ds]
        if any(_brings_up_a_test_bed(d.func) for d in defs):
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.e2e)
        elif item.get_closest_marker("root") or any(
                d.argname in _LIT_RUN_FIXTURES and getattr(d.func, "__module__", None) == __name__ for d in defs):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[Any]:
    """The Kubernetes test cluster (tests/k8s/cluster.py), one per session: three nodes, gpu-1 with nvidia.com/gpu."""
    from tests.k8s.cluster import k8s_cluster_fixture

    yield from k8s_cluster_fixture()
