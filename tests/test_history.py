"""`lit runs` and `lit logs` on real runs: `lit run` as a subprocess with its own LIT_HOME (tests/conftest.py's
`lit` fixture), then the commands through a test-only click group (so these tests do not depend on how lit/cli.py
registers them), in a subprocess too where they must run beside a live run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from lit.history import logs, runs
from lit.runtime.history import LogTail, find_run, read_run
from tests.conftest import LitRunner, prefixed
from tests.support import wait_for, wait_line

pytestmark = pytest.mark.timeout(90)

# Two parallel works: each prints a line, waits for the file $GATE, prints another and ends (FAIL=1: alpha then
# raises). Each work's pid goes to $LIT_TEST_OBS, so the fixture's cleanup ends works a killed lit left behind.
GATED_APP = textwrap.dedent('''
    import json, os, time
    import lit as L

    def note(**fields):
        path = os.environ.get("LIT_TEST_OBS")
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps({"event": "pid", "pid": os.getpid(), **fields}) + "\\n")

    class Talker(L.LightningWork):
        def __init__(self):
            super().__init__(parallel=True)

        def run(self, tag):
            note(tag=tag)
            print(f"{tag} before", flush=True)
            while not os.path.exists(os.environ["GATE"]):
                time.sleep(0.05)
            print(f"{tag} after", flush=True)
            if tag == "alpha" and os.environ.get("FAIL") == "1":
                raise RuntimeError("alpha failed on purpose")

    class Flow(L.LightningFlow):
        def __init__(self):
            super().__init__()
            self.alpha = Talker()
            self.beta = Talker()

        def run(self):
            self.alpha.run("alpha")
            self.beta.run("beta")
            if self.alpha.has_succeeded and self.beta.has_succeeded:
                self.stop("both done")

    app = L.LightningApp(Flow())
''')

# The test-only group: what lit/cli.py adds, without depending on it. Run as a script for subprocess calls.
GROUP_SCRIPT = textwrap.dedent('''
    import click
    from lit.history import logs, runs

    @click.group()
    def group():
        pass

    group.add_command(runs)
    group.add_command(logs)
    group()
''')


@click.group()
def group() -> None:
    pass


group.add_command(runs)
group.add_command(logs)


class History:
    """`lit run` of the gated app and the history commands, all with the `lit` fixture's LIT_HOME."""

    def __init__(self, lit: LitRunner) -> None:
        self.lit = lit
        self.app = lit.tmp_path / "gated_app.py"
        self.app.write_text(GATED_APP)
        self.gate = lit.tmp_path / "gate"
        self.script = lit.tmp_path / "history_cli.py"
        self.script.write_text(GROUP_SCRIPT)

    def env(self, **extra: str) -> dict[str, str]:
        return {"GATE": str(self.gate), **extra}

    def start(self, name: str, **extra: str) -> subprocess.Popen[str]:
        return self.lit.start(str(self.app), "--name", name, env=self.env(**extra))

    def run(self, name: str, **extra: str) -> subprocess.CompletedProcess[str]:
        self.gate.touch()
        return self.lit.run(str(self.app), "--name", name, env=self.env(**extra), timeout=60)

    def cli(self, *args: str) -> Any:
        """The command in this process (CliRunner), with this test's LIT_HOME."""
        return CliRunner().invoke(group, list(args), env={"LIT_HOME": str(self.lit.home), "NO_COLOR": "1",
                                                          "COLUMNS": "200"})

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return self.lit.popen_raw([sys.executable, str(self.script), *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)

    def runs_json(self) -> dict[str, dict[str, Any]]:
        result = self.cli("runs", "--json")
        assert result.exit_code == 0, result.output
        return {r["name"]: r for r in json.loads(result.output)}

    def status(self, name: str) -> str:
        return str(self.runs_json()[name]["status"])

    def wait_logged(self, name: str, text: str, timeout: float = 30) -> None:
        logs_dir = self.lit.home / "runs" / name / "logs"
        wait_for(lambda: any(text in p.read_text(errors="replace") for p in logs_dir.glob("*.log")) if
                 logs_dir.exists() else False, timeout, f"{text!r} in {logs_dir}")


@pytest.fixture
def history(lit: LitRunner) -> History:
    return History(lit)


def _table_row(output: str, name: str) -> list[str]:
    line = next(line for line in output.splitlines() if f" {name} " in line)
    return [cell.strip() for cell in line.split("│")[1:-1]]


# -- lit runs ---------------------------------------------------------------------------------------------------


def test_runs_lists_succeeded_and_failed_runs_newest_first(history: History) -> None:
    ok = history.run("first-ok")
    assert ok.returncode == 0, ok.stderr
    failed = history.run("second-bad", FAIL="1")
    assert failed.returncode == 1, failed.stderr

    listed = history.runs_json()
    assert list(listed) == ["second-bad", "first-ok"]  # newest first
    good, bad = listed["first-ok"], listed["second-bad"]
    assert (good["status"], good["exit_code"], good["cluster"]) == ("succeeded", 0, None)
    assert (bad["status"], bad["exit_code"]) == ("failed", 1)
    assert good["app"] == str(history.app.resolve())
    assert good["started"] <= bad["started"]
    assert good["duration"] > 0
    assert sorted(good["works"]) == ["alpha", "beta"]

    table = history.cli("runs")
    assert table.exit_code == 0, table.output
    header = next(line for line in table.output.splitlines() if "cluster" in line)
    for column in ("run", "app", "cluster", "status", "exit", "cost", "started", "duration"):
        assert column in header
    assert _table_row(table.output, "first-ok")[1:5] == ["gated_app.py", "local", "succeeded", "0"]
    assert _table_row(table.output, "second-bad")[3:5] == ["failed", "1"]
    assert table.output.index("second-bad") < table.output.index("first-ok")


def test_a_running_run_shows_as_running_until_it_ends(history: History) -> None:
    proc = history.start("live")
    history.wait_logged("live", "beta before")
    assert history.status("live") == "running"
    running = history.runs_json()["live"]
    assert running["exit_code"] is None and running["pid"] == proc.pid
    assert _table_row(history.cli("runs").output, "live")[3] == "running"
    history.gate.touch()
    assert proc.wait(30) == 0
    assert history.status("live") == "succeeded"


def test_a_sigkilled_run_is_not_shown_as_running(history: History) -> None:
    proc = history.start("killed")
    history.wait_logged("killed", "alpha before")
    assert history.status("killed") == "running"
    os.killpg(proc.pid, signal.SIGKILL)  # lit only: its works are in sessions of their own
    proc.wait(10)
    info = history.runs_json()["killed"]
    assert info["status"] == "ended-without-record", info
    assert str(proc.pid) in info["message"]
    row = _table_row(history.cli("runs").output, "killed")
    assert row[3].startswith("ended without a record")
    history.gate.touch()  # let its orphaned works end


def test_a_run_ended_with_ctrl_c_is_interrupted(history: History) -> None:
    proc = history.start("stopped")
    history.wait_logged("stopped", "beta before")
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(30) == 130
    info = history.runs_json()["stopped"]
    assert (info["status"], info["exit_code"]) == ("interrupted", 130), info


def test_damaged_records_are_rows_not_crashes(history: History) -> None:
    ok = history.run("fine")
    assert ok.returncode == 0, ok.stderr
    runs_dir = history.lit.home / "runs"
    (runs_dir / "garbled").mkdir()
    (runs_dir / "garbled" / "run.json").write_text("{not json")
    (runs_dir / "listy").mkdir()
    (runs_dir / "listy" / "run.json").write_text("[1, 2]")
    (runs_dir / "nocode").mkdir()
    (runs_dir / "nocode" / "run.json").write_text('{"works": "nope"}')
    (runs_dir / "badstart").mkdir()
    (runs_dir / "badstart" / "start.json").write_text('{"pid": "x", "started": "[red]"}')

    listed = history.runs_json()
    assert listed["fine"]["status"] == "succeeded"
    for name in ("garbled", "listy", "nocode"):
        assert listed[name]["status"] == "damaged", listed[name]
        assert listed[name]["message"]
    assert listed["badstart"]["status"] == "ended-without-record"
    table = history.cli("runs")
    assert table.exit_code == 0, table.output
    assert _table_row(table.output, "garbled")[3].startswith("damaged: run.json")


def test_runs_with_no_runs_yet(history: History) -> None:
    result = history.cli("runs", "--json")
    assert result.exit_code == 0 and json.loads(result.output) == []
    result = history.cli("runs")
    assert result.exit_code == 0 and "no runs yet" in result.output


# -- lit logs ---------------------------------------------------------------------------------------------------


def test_logs_of_all_works_and_of_one(history: History) -> None:
    result = history.run("talk-2026")
    assert result.returncode == 0, result.stderr

    every = history.cli("logs", "talk")  # a unique prefix is enough
    assert every.exit_code == 0, every.output
    assert prefixed(every.output, "alpha") == ["alpha before", "alpha after"]
    assert prefixed(every.output, "beta") == ["beta before", "beta after"]
    # as `lit run` printed them, prefix for prefix (the padding of a prefix depends on the names seen so far)
    def unpadded(text: str) -> list[str]:
        return sorted(re.sub(r"\s+\| ", " | ", line, count=1) for line in text.splitlines())

    assert unpadded(every.output) == unpadded(result.stdout)

    one = history.cli("logs", "talk-2026", "beta")
    assert one.exit_code == 0, one.output
    assert one.output.splitlines() == ["beta before", "beta after"]


def test_logs_follow_prints_lines_as_they_come_and_exits_when_the_run_ends(history: History) -> None:
    proc = history.start("followed")
    history.wait_logged("followed", "alpha before")
    follower = history.popen("logs", "followed", "-f")
    seen = wait_line(follower, "before", timeout=30)
    time.sleep(0.5)
    assert follower.poll() is None, "lit logs -f ended while the run was still going"
    history.gate.touch()
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    text = "".join(seen) + out
    assert prefixed(text, "alpha") == ["alpha before", "alpha after"]
    assert prefixed(text, "beta") == ["beta before", "beta after"]
    assert proc.wait(30) == 0


def test_logs_follow_of_a_finished_run_prints_it_and_exits(history: History) -> None:
    assert history.run("done").returncode == 0
    follower = history.popen("logs", "done", "alpha", "--follow")
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    assert out.splitlines() == ["alpha before", "alpha after"]


def test_logs_of_an_unknown_or_ambiguous_run_or_work_is_one_line_and_exit_2(history: History) -> None:
    assert history.run("same-1").returncode == 0
    assert history.run("same-2").returncode == 0
    for args, said in ((["logs", "nosuch"], "no run named 'nosuch'"),
                       (["logs", "same"], "'same' starts 2 run names (same-1, same-2)"),
                       (["logs", "same-1", "gamma"], "no log of a work named 'gamma'"),
                       (["logs", "../runs"], "not a run name")):
        result = subprocess.run([sys.executable, str(history.script), *args], capture_output=True, text=True,
                                env={**history.lit.environ()}, timeout=30)
        assert result.returncode == 2, (args, result)
        assert result.stdout == ""
        assert len(result.stderr.splitlines()) == 1 and said in result.stderr, (args, result.stderr)


# -- the readers, without a run ---------------------------------------------------------------------------------


def test_log_tail_returns_complete_lines_only_until_the_end(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_bytes(b"one\ntw")
    tail = LogTail(log)
    assert tail.read() == ["one"]
    with open(log, "ab") as fh:
        fh.write(b"o\nthr")
    assert tail.read() == ["two"]
    assert tail.read(final=True) == ["thr"]
    assert tail.read(final=True) == []


def test_find_run_and_read_run_on_hand_made_folders(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    (runs_dir / "abc-1").mkdir(parents=True)
    (runs_dir / "abd-1").mkdir()
    assert find_run("abc", tmp_path).name == "abc-1"
    assert find_run("abd-1", tmp_path).name == "abd-1"
    with pytest.raises(Exception, match="starts 2 run names"):
        find_run("ab", tmp_path)
    # a start record of a process that is not alive (pid 0 never is)
    (runs_dir / "abc-1" / "start.json").write_text(json.dumps({"pid": 0, "started": time.time() - 5}))
    info = read_run(runs_dir / "abc-1")
    assert info.status == "ended-without-record"
    # a start record of this very process: running
    (runs_dir / "abd-1" / "start.json").write_text(json.dumps({"pid": os.getpid(), "started": time.time()}))
    assert read_run(runs_dir / "abd-1").status == "running"


def test_the_lit_command_has_runs_and_logs(tmp_path: Path) -> None:
    env = {**os.environ, "LIT_HOME": str(tmp_path / "home")}
    listed = subprocess.run([sys.executable, "-m", "lit", "runs", "--json"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    missing = subprocess.run([sys.executable, "-m", "lit", "logs", "nope"], capture_output=True, text=True, env=env,
                             timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no run named 'nope'"), missing.stderr
