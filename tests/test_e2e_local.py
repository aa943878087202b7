"""End to end: `lit run APP.py` as a subprocess, each work in its own process, a private LIT_HOME per test.

The apps are in tests/apps/; they take parameters from `--env K=V` and write observations (JSON lines) to
$LIT_TEST_OBS, which the tests read through the `lit` fixture (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import APPS, REPO, LitRunner, pid_alive, prefixed, table_rows
from tests.support import wait_for

pytestmark = pytest.mark.timeout(60)


def _line_of(app: str, marker: str) -> int:
    lines = (APPS / app).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


def _float_seconds(cell: str) -> float:
    match = re.fullmatch(r"([0-9.]+) ?s", cell)
    assert match, f"wall time cell {cell!r} is not 'N.NN s'"
    return float(match.group(1))


# -- the seed's hello app and the summary ------------------------------------------------------------


def test_hello_app_prints_both_lines_and_exits_0(shared_run: Any) -> None:
    _, result = shared_run(REPO / "examples" / "hello_app.py")
    assert result.returncode == 0, result.stderr
    assert prefixed(result.stdout, "work_A") == ["running code A on a CPU machine"]
    assert prefixed(result.stdout, "work_B") == ["running code B on a GPU machine"]
    out = result.stdout.splitlines()
    assert out.index(next(x for x in out if "code A" in x)) < out.index(next(x for x in out if "code B" in x))
    assert "Traceback" not in result.stderr


def test_summary_table_lists_works_compute_status_calls_wall_time(shared_run: Any) -> None:
    lit, result = shared_run(REPO / "examples" / "hello_app.py")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stderr.splitlines() if "compute" in line)
    for column in ("work", "compute", "status", "calls", "wall time"):
        assert column in header
    rows = table_rows(result.stderr)
    assert set(rows) == {"work_A", "work_B"}
    assert rows["work_A"][1:4] == ["cpu", "succeeded", "1"]
    assert rows["work_B"][1:4] == ["gpu", "succeeded", "1"]
    for row in rows.values():
        assert _float_seconds(row[4]) >= 0
    record = json.loads(next(iter(lit.run_dirs())).joinpath("run.json").read_text())
    assert record["exit_code"] == 0
    assert {w["name"]: w["stage"] for w in record["works"]} == {"work_A": "succeeded", "work_B": "succeeded"}


def test_summary_shows_failed_status_and_wall_time(shared_run: Any) -> None:
    _, result = shared_run("parallel_app.py", env={"PARALLEL": "1", "SLEEP": "1"})
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stderr)
    assert rows["a"][1:4] == ["default", "succeeded", "1"]
    assert 0.9 <= _float_seconds(rows["a"][4]) < 5
    _, failed = shared_run("fail_app.py", env={"MODE": "nostop"})
    rows = table_rows(failed.stderr)
    assert rows["boom"][2] == "failed"
    assert rows["boom"][3] == "1"


# -- state both ways ---------------------------------------------------------------------------------


def test_state_flows_both_ways(shared_run: Any) -> None:
    lit, result = shared_run("state_app.py")
    assert result.returncode == 0, result.stderr
    calls = {r["step"]: r for r in lit.obs("work_call")}
    # flow -> work: set by the flow in run() before the first call, and between calls
    assert calls[1]["config"] == "set-in-run-before-first-call"
    assert calls[2]["config"] == "set-between-calls"
    assert calls[2]["progress"] == 5  # the work keeps its own state between calls

    # work -> flow: progress values reach the flow while the work still runs, in increasing order
    saw = lit.obs("flow_saw")
    values = [r["value"] for r in saw]
    assert values == sorted(set(values)), values
    assert set(values) <= {1, 2, 3, 4, 5} and values[-1] == 5
    end_1 = next(r["time"] for r in lit.obs("work_end") if r["step"] == 1)
    during = [r for r in saw if r["time"] < end_1 and r["stage"] == "running"]
    assert len(during) >= 2, f"the flow saw too little while the work ran: {saw}"

    # in place (list.append, dict[k] = v): arrives at the latest when the call ends
    after = lit.obs("after_call1")[0]
    assert after["items"] == ["a", "b"]
    assert after["table"] == {"k": "v"}
    assert after["progress"] == 5


def test_flow_write_to_running_work_applies_before_next_call(shared_run: Any) -> None:
    lit, result = shared_run("state_app.py")
    assert result.returncode == 0, result.stderr
    wrote = lit.obs("flow_wrote_knob")[0]["time"]
    knob = {r["step"]: r for r in lit.obs("knob_call")}
    knob_end = {r["step"]: r for r in lit.obs("knob_end")}
    assert wrote < knob_end[1]["time"], "the flow's write was not made while call 1 ran"
    assert knob[1]["knob"] == "init"
    assert knob[2]["knob"] == "written-while-running"


# -- non-JSON state, arguments and return values -----------------------------------------------------


def test_non_json_assignments_and_arguments_raise_at_once(lit: LitRunner) -> None:
    result = lit.run("nonjson_app.py", env={"MODE": "catch"})
    assert result.returncode == 0, result.stderr
    caught = {r["label"]: r for r in lit.obs("flow_caught")}
    assert set(caught) == {"flow_attr", "flow_obj", "work_attr_from_flow", "kwarg"}
    assert "bad_flow_attr" in caught["flow_attr"]["message"]
    assert "set" in caught["flow_attr"]["message"]
    assert "bad_obj_attr" in caught["flow_obj"]["message"]
    assert "bad_from_flow" in caught["work_attr_from_flow"]["message"]
    assert "payload" in caught["kwarg"]["message"]
    for record in caught.values():
        assert record["type"] == "StateError"
        assert "JSON" in record["message"]
    attrs = lit.obs("flow_attrs")[0]
    assert not attrs["has_flow_attr"] and not attrs["has_obj_attr"] and not attrs["has_work_attr"]
    work = lit.obs("work_caught")[0]
    assert work["type"] == "StateError" and "bad_work_attr" in work["message"]
    assert not work["has_attr"]
    assert [r["payload"] for r in lit.obs("work_ran")] == [[1, 2]]


def test_non_json_flow_attribute_uncaught_fails_the_app(lit: LitRunner) -> None:
    result = lit.run("nonjson_app.py", env={"MODE": "flow_attr"})
    assert result.returncode == 1
    assert "bad_flow_attr" in result.stderr
    assert f'nonjson_app.py", line {_line_of("nonjson_app.py", "FLOW-ATTR-LINE")}' in result.stderr


def test_non_json_work_attribute_fails_the_work(lit: LitRunner) -> None:
    result = lit.run("nonjson_app.py", env={"MODE": "work_attr"})
    assert result.returncode == 1
    assert "bad_work_attr" in result.stderr
    assert f'nonjson_app.py", line {_line_of("nonjson_app.py", "WORK-ATTR-LINE")}' in result.stderr
    assert table_rows(result.stderr)["worker"][2] == "failed"


def test_an_app_whose_flow_and_work_define_configure_layout_runs(lit: LitRunner) -> None:
    result = lit.run("layout_app.py")
    assert result.returncode == 0, result.stderr
    assert "ran with a layout" in result.stderr and "server | served" in result.stdout
    assert "configure_layout" not in result.stderr and "LightningCompatWarning" not in result.stderr  # supported


@pytest.mark.parametrize("mode, name", [("kwarg", "payload"), ("arg", None)])
def test_non_json_run_argument_is_a_clear_error(lit: LitRunner, mode: str, name: str) -> None:
    result = lit.run("nonjson_app.py", env={"MODE": mode})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "argument" in errors[0] and "neither JSON nor picklable" in errors[0]
    assert re.search(r"argument (payload|0)\b" if name is None else rf"argument {name}\b", errors[0])
    assert lit.obs("work_ran") == []


def test_non_json_in_place_mutation_in_a_work_is_an_error(lit: LitRunner) -> None:
    result = lit.run("nonjson_app.py", env={"MODE": "inplace"})
    assert result.returncode == 1, f"the lost update went unnoticed: {lit.obs('flow_after')}"
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "items" in error


def test_run_returning_a_value_is_a_clear_error(lit: LitRunner) -> None:
    result = lit.run("nonjson_app.py", env={"MODE": "return"})
    assert result.returncode == 1
    assert "returned 42" in result.stderr
    assert "must return None" in result.stderr


# -- cache_calls -------------------------------------------------------------------------------------


def test_cache_calls_true_returns_at_once_without_running(lit: LitRunner) -> None:
    result = lit.run("cache_app.py", env={"CACHE": "1"})
    assert result.returncode == 0, result.stderr
    assert [r["x"] for r in lit.obs("run")] == [1, 2]
    assert lit.obs("second_call_returned")[0]["runs"] == 1
    assert "runs=2" in result.stderr


def test_cache_calls_false_runs_again(lit: LitRunner) -> None:
    result = lit.run("cache_app.py", env={"CACHE": "0"})
    assert result.returncode == 0, result.stderr
    assert [r["x"] for r in lit.obs("run")] == [1, 1, 2]
    assert lit.obs("second_call_returned")[0]["runs"] == 2
    assert "runs=3" in result.stderr


# -- blocking vs parallel ----------------------------------------------------------------------------


def test_parallel_calls_overlap(shared_run: Any) -> None:
    lit, result = shared_run("parallel_app.py", env={"PARALLEL": "1", "SLEEP": "1"})
    assert result.returncode == 0, result.stderr
    starts = {r["label"]: r["time"] for r in lit.obs("start")}
    ends = {r["label"]: r["time"] for r in lit.obs("end")}
    assert max(starts.values()) < min(ends.values()), "the parallel works did not overlap"
    # the call returned at once: the code after it ran before the work finished
    assert lit.obs("after_a")[0]["time"] < ends["a"]
    assert lit.obs("after_a")[0]["a_stage"] != "succeeded"


def test_blocking_call_runs_following_code_only_after_success(lit: LitRunner) -> None:
    result = lit.run("parallel_app.py", env={"PARALLEL": "0", "SLEEP": "0.3"})
    assert result.returncode == 0, result.stderr
    starts = {r["label"]: r["time"] for r in lit.obs("start")}
    ends = {r["label"]: r["time"] for r in lit.obs("end")}
    after_a = lit.obs("after_a")
    assert len(after_a) == 1
    assert after_a[0]["a_stage"] == "succeeded"
    assert after_a[0]["time"] >= ends["a"]
    assert starts["b"] >= ends["a"], "b started before the blocking call to a succeeded"
    assert lit.obs("after_b")[0]["time"] >= ends["b"]


# -- failures ----------------------------------------------------------------------------------------


def test_work_exception_ends_the_app_with_its_traceback(lit: LitRunner) -> None:
    result = lit.run("fail_app.py", env={"MODE": "raise"})
    assert result.returncode == 1  # within lit.run's 20 s: the parallel ticker's 30 s are not waited for
    assert f'fail_app.py", line {_line_of("fail_app.py", "RAISE-LINE")}' in result.stderr
    assert "ValueError: boom-from-work x=1" in result.stderr
    assert "boom" in next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert lit.obs("after_boom") == []


def test_work_failure_without_raise_is_seen_by_the_flow(lit: LitRunner) -> None:
    result = lit.run("fail_app.py", env={"MODE": "handled"})
    assert result.returncode == 0, result.stderr
    assert "handled: ValueError: boom-from-work x=1" in result.stderr
    after = lit.obs("after_boom")
    assert after, "the code after the failed blocking call never ran"
    assert all(r["failed"] and r["stage"] == "failed" for r in after)
    assert after[0]["message"] == "ValueError: boom-from-work x=1"
    # later ticks (the ticker keeps changing state) call boom.run(1) again: it must not re-run
    assert max(r["ticker_n"] for r in after) >= 2, "too few ticks after the failure to tell"
    assert len(lit.obs("boom_run")) == 1


def test_quiescent_app_with_a_failed_work_exits_1(shared_run: Any) -> None:
    lit, result = shared_run("fail_app.py", env={"MODE": "nostop"})
    assert result.returncode == 1
    assert "boom" in next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert len(lit.obs("boom_run")) == 1


def test_killed_work_process_is_a_failure(lit: LitRunner) -> None:
    result = lit.run("fail_app.py", env={"MODE": "kill"})
    assert result.returncode == 1
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "boom" in error and "SIGKILL" in error  # within lit.run's 20 s, not after the ticker's 30 s


def test_killed_work_without_raise_is_seen_by_the_flow(lit: LitRunner) -> None:
    result = lit.run("fail_app.py", env={"MODE": "kill_handled"})
    assert result.returncode == 0, result.stderr
    after = lit.obs("after_boom")
    assert after and after[0]["failed"] and "SIGKILL" in after[0]["message"]
    assert len(lit.obs("boom_run")) == 1


# -- flow.stop() / flow.fail() -----------------------------------------------------------------------


def test_flow_stop_exits_0_with_message(lit: LitRunner) -> None:
    result = lit.run("control_app.py", env={"MODE": "stop"})
    assert result.returncode == 0
    assert "stopped on purpose 123" in result.stderr
    assert prefixed(result.stdout, "echo") == ["echo ran"]


def test_flow_fail_exits_1_with_message(lit: LitRunner) -> None:
    result = lit.run("control_app.py", env={"MODE": "fail"})
    assert result.returncode == 1
    assert "failing on purpose 456" in result.stderr


def test_flow_exception_exits_1_with_traceback(lit: LitRunner) -> None:
    result = lit.run("control_app.py", env={"MODE": "raise"})
    assert result.returncode == 1
    assert f'control_app.py", line {_line_of("control_app.py", "FLOW-RAISE-LINE")}' in result.stderr
    assert "RuntimeError: flow exploded 789" in result.stderr


# -- schedule() --------------------------------------------------------------------------------------


def test_two_second_level_schedules_fire_on_their_own_times(lit: LitRunner) -> None:
    result = lit.run("schedule_app.py", env={"MODE": "two"})
    assert result.returncode == 0, result.stderr
    fires = lit.obs("fires")[0]
    every_second, every_two = fires["every_second"], fires["every_two"]
    assert fires["ticks"] > len(every_second) + 3, "the flow did not tick between events"
    # both True on the first call (the first tick)
    assert every_second[0] == every_two[0]
    # then once per event: each later fire just after a whole second, never twice for one event
    later = every_second[1:]
    assert len(later) == 2
    assert all(t - int(t) < 0.9 for t in later), later  # just after a whole second (generous under load)
    assert len({int(t) for t in later}) == len(later)
    assert all(b - a > 0.5 for a, b in zip(later, later[1:]))
    # "*/2": only at even seconds; between the two schedules' events the flow saw False
    assert len(every_two) >= 2
    assert all(int(t) % 2 == 0 for t in every_two[1:]), every_two
    assert len(every_two) < len(every_second)


def test_invalid_cron_pattern_raises_value_error_naming_it(lit: LitRunner) -> None:
    result = lit.run("schedule_app.py", env={"MODE": "invalid", "PATTERN": "every blue moon"})
    assert result.returncode == 1
    assert "ValueError" in result.stderr
    assert "every blue moon" in next(line for line in result.stderr.splitlines() if line.startswith("error:"))


@pytest.mark.parametrize("pattern", ["hourly", "daily", "@weekly"])
def test_schedule_aliases_are_accepted(lit: LitRunner, pattern: str) -> None:
    result = lit.run("schedule_app.py", env={"MODE": "alias", "PATTERN": pattern})
    assert result.returncode == 0, result.stderr
    alias = lit.obs("alias")[0]
    assert alias["first"] is True and alias["second"] is True


# -- Ctrl-C and SIGTERM ------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """The CPU time `pid` has used (user and system, /proc/PID/stat), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime and stime, fields 14 and 15


def _wait_in_re_match(pid: int) -> None:
    """Until the work, which reported its pid right before its re.match, has spent 0.2 s of CPU more in it."""
    before = _cpu_seconds(pid)
    wait_for(lambda: _cpu_seconds(pid) >= before + 0.2, 10, "the work to be in re.match")


def _wait_gone(pids: set[int], timeout: float = 5.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {pid for pid in pids if pid_alive(pid)}
        if not alive:
            return set()
        time.sleep(0.05)
    return alive


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("mode, works", [("sleep", 2), ("blocking", 1)])
def test_signal_ends_every_process_of_the_run(lit: LitRunner, signum: int, code: int, mode: str,
                                              works: int) -> None:
    proc = lit.start("signal_app.py", env={"MODE": mode})
    records = lit.wait_for("pids", count=works)
    pids = {r["work_pid"] for r in records} | {r["child_pid"] for r in records}
    assert len(pids) == 2 * works and all(pid_alive(pid) for pid in pids)
    os.kill(proc.pid, signum)
    assert proc.wait(10) == code
    assert _wait_gone(pids) == set(), "processes of the run survived lit"
    _, err = lit.output()
    assert ("interrupted" if code == 130 else "terminated") in err


def test_killing_lit_ends_its_works(lit: LitRunner) -> None:
    """lit itself SIGKILLed (no cleanup possible): the agents see their channel close and end their tree."""
    proc = lit.start("signal_app.py", env={"MODE": "sleep"})
    records = lit.wait_for("pids", count=2)
    pids = {r["work_pid"] for r in records} | {r["child_pid"] for r in records}
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    assert _wait_gone(pids) == set(), "processes of the run survived lit"


def test_ctrl_c_ends_the_children_of_a_busy_work(lit: LitRunner) -> None:
    proc = lit.start("signal_app.py", env={"MODE": "hog"})
    records = lit.wait_for("pids")
    pids = {records[0]["work_pid"], records[0]["child_pid"]}
    _wait_in_re_match(records[0]["work_pid"])
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(10) == 130
    assert _wait_gone(pids, timeout=1.5) == set(), "processes of the run survived lit"


def test_second_ctrl_c_during_shutdown_still_ends_everything(lit: LitRunner) -> None:
    proc = lit.start("signal_app.py", env={"MODE": "hog"})
    records = lit.wait_for("pids")
    pids = {records[0]["work_pid"], records[0]["child_pid"]}
    _wait_in_re_match(records[0]["work_pid"])
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.3)  # lit is now waiting for the busy agent to end
    os.kill(proc.pid, signal.SIGINT)
    code = proc.wait(10)
    alive = _wait_gone(pids, timeout=1.5)
    assert (code, alive) == (130, set())


def test_killed_work_leaves_no_process_behind(lit: LitRunner) -> None:
    result = lit.run("signal_app.py", env={"MODE": "killed"})
    assert result.returncode == 1
    assert "SIGKILL" in result.stderr
    records = lit.obs("pids")
    assert _wait_gone({records[0]["child_pid"]}, timeout=1.5) == set(), "the killed work's child survived lit"


# -- dynamic works and a work as the root ------------------------------------------------------------


def test_works_created_inside_run_start_and_complete(lit: LitRunner) -> None:
    result = lit.run("dynamic_app.py")
    assert result.returncode == 0, result.stderr
    echoes = {r["tag"]: r for r in lit.obs("echo")}
    assert set(echoes) == {"dict0", "dict1", "list0", "attr"}
    # re-created in its own process from class + constructor arguments (the private attribute proves it)
    assert echoes["dict0"]["secret"] == "DICT0x1"
    assert echoes["dict1"]["secret"] == "DICT1x2"
    assert echoes["list0"]["secret"] == "LIST0x5"
    assert echoes["attr"]["secret"] == "ATTRx7"
    assert echoes["dict0"]["name"] == "root.by_key.k0"
    assert len({r["pid"] for r in echoes.values()}) == 4
    done = lit.obs("all_done")[0]
    assert all(done["done"])
    assert set(table_rows(result.stderr)) == {"by_key.k0", "by_key.k1", "in_list.0", "solo"}
    assert prefixed(result.stdout, "in_list.0") == ["echo list0"]


def test_work_created_in_a_child_flow_gets_flow_state_and_returns_its_own(lit: LitRunner) -> None:
    result = lit.run("nested_app.py")
    assert result.returncode == 0, result.stderr
    work = lit.obs("work_saw")[0]
    assert work["tag"] == "nested" and work["compute"] == "gpu"
    assert work["items"] == ["from-init", "from-flow"]  # the flow's in-place change
    assert work["extra"] == {"k": 1}  # an attribute the flow added
    assert lit.obs("flow_saw")[0] == {**lit.obs("flow_saw")[0], "created": "nested-1",
                                      "items": ["from-init", "from-flow"]}
    assert table_rows(result.stderr)["child.dyn"][1:3] == ["gpu", "succeeded"]


def test_single_work_as_root_runs_once_and_exits_0(lit: LitRunner) -> None:
    result = lit.run("solo_app.py")
    assert result.returncode == 0, result.stderr
    assert len(lit.obs("solo_run")) == 1
    assert any(line.endswith("| solo ran") for line in result.stdout.splitlines())


# -- output and working directories ------------------------------------------------------------------


def test_work_output_does_not_corrupt_the_channel(lit: LitRunner) -> None:
    result = lit.run("prints_app.py", "--name", "printrun")
    assert result.returncode == 0, result.stderr
    out = prefixed(result.stdout, "printer")
    numbered = [line for line in out if line.startswith("line ")]
    assert numbered == [f"line {i}" for i in range(300)]
    status_like = '{"t":"status","s":1,"a":0,"stage":"failed","message":"fake"}'
    assert out.count(status_like) == 6
    assert json.dumps({"t": "state", "s": 2, "d": {"x": 250}}) in out
    for line in ('{"t":"bye","s":99}', "part-A part-B", "from-child", "partial-no-newline"):
        assert line in out
    err = prefixed(result.stderr, "printer")
    assert "to-stderr-1" in err and "stderr-partial" in err
    # everything also in the work's log file, in the run dir named by --name
    log = (lit.home / "runs" / "printrun" / "logs" / "printer.log").read_text().splitlines()
    for line in ("line 0", "line 299", status_like, "part-A part-B", "from-child", "partial-no-newline",
                 "to-stderr-1", "stderr-partial"):
        assert line in log
    assert [run.name for run in lit.run_dirs()] == ["printrun"]


def test_output_printed_before_a_stop_is_not_lost(lit: LitRunner) -> None:
    result = lit.run("prints_app.py", "--name", "burst", env={"MODE": "burst"})
    assert result.returncode == 0, result.stderr
    out = prefixed(result.stdout, "printer")
    assert len(out) == 30000 and out[-1] == "29999", f"{30000 - len(out)} of 30000 lines lost"
    log = (lit.home / "runs" / "burst" / "logs" / "printer.log").read_text().splitlines()
    assert len(log) == 30000


def test_each_work_runs_in_its_own_directory_under_the_run_dir(lit: LitRunner, tmp_path: Path) -> None:
    app_dir = tmp_path / "appdir"
    app_dir.mkdir()
    for name in ("workdir_app.py", "litobs.py"):
        shutil.copy(APPS / name, app_dir / name)
    result = lit.run(app_dir / "workdir_app.py", "--name", "wd")
    assert result.returncode == 0, result.stderr
    run_dir = (lit.home / "runs" / "wd").resolve()
    cwds = {r["name"]: Path(r["cwd"]).resolve() for r in lit.obs("cwd")}
    assert set(cwds) == {"root.one", "root.two"}
    assert cwds["root.one"] != cwds["root.two"]
    for name, cwd in cwds.items():
        assert run_dir in cwd.parents
        assert len(cwd.relative_to(run_dir).parts) <= 2, cwd  # e.g. works/one
        assert (cwd / "out.txt").read_text() == name
    assert not (app_dir / "out.txt").exists()
    assert not (lit.cwd / "out.txt").exists()


def test_relative_app_path_from_another_directory(lit: LitRunner) -> None:
    shutil.copy(REPO / "examples" / "hello_app.py", lit.cwd / "hello_app.py")
    result = lit.run("hello_app.py")
    assert result.returncode == 0, result.stderr
    assert prefixed(result.stdout, "work_B") == ["running code B on a GPU machine"]


def test_work_directory_with_a_relative_lit_home(lit: LitRunner) -> None:
    result = lit.run("workdir_app.py", "--name", "wd", process_env={"LIT_HOME": "relhome"})
    assert result.returncode == 0, result.stderr
    run_dir = (lit.cwd / "relhome" / "runs" / "wd").resolve()
    assert run_dir.is_dir()
    for record in lit.obs("cwd"):
        cwd = Path(record["cwd"]).resolve()
        assert run_dir in cwd.parents
        assert len(cwd.relative_to(run_dir).parts) <= 2, cwd
