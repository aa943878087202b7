"""Past and running runs, read from their folders under the lit home (`runs/<run>/`).

A run's folder holds `start.json` (written when the run starts: which process runs it), `run.json` (written by
`lit run` when the run ends: exit code and works) and `logs/<work>.log` (each work's output lines, written by the
orchestrator as they arrive, from local and remote works alike). What a run's status is follows from these: an end
record says how it ended; without one, the run is running only while the process named in its start record lives
(a run whose process was killed has a start record and no end record, and must not look like it runs forever).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import BadInput, ExitCode
from .home import lit_home

START_FILE = "start.json"
END_FILE = "run.json"
LOGS = "logs"
# Files in logs/ that are not a work's output: the local agents' own stderr and the fork server's.
_AGENT_SUFFIX = ".agent.log"
_NOT_WORK_LOGS = {"forkserver.log"}

RUNNING = "running"
UNRECORDED = "ended-without-record"  # its process is gone and it wrote no end record (SIGKILL, a crash, a reboot)
DAMAGED = "damaged"
_BY_EXIT_CODE = {
    ExitCode.OK: "succeeded",
    ExitCode.FAILED: "failed",
    ExitCode.BAD_INPUT: "bad-input",
    ExitCode.INFRASTRUCTURE: "infrastructure-error",
    ExitCode.INTERRUPTED: "interrupted",
    ExitCode.TERMINATED: "terminated",
}


def runs_root(home: Optional[Path] = None) -> Path:
    return (home or lit_home()) / "runs"


# -- the start record -------------------------------------------------------------------------------------------


def _process_start(pid: int) -> Optional[int]:
    """When `pid` started (clock ticks since boot, Linux only): with the pid it names one process, so a pid the
    system reused for another process after the run's was killed does not make the run look alive."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2:].split()[:1]
    return state in ([b"Z"], [b"X"])


def process_alive(pid: int, started: Optional[int] = None) -> bool:
    """Whether process `pid` lives (and, when `started` is given and /proc tells, is the one that started then)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if _zombie(pid):
        return False
    if started is not None:
        now = _process_start(pid)
        if now is not None and now != started:
            return False
    return True


def write_start(run_dir: Path, app_file: Path, cluster: Optional[str] = None) -> None:
    """Record that this process runs the run in `run_dir` (whose folder exists). Written whole or not at all: a
    reader never sees half of it."""
    pid = os.getpid()
    record = {
        "version": 1,
        "app": str(Path(app_file).resolve()),
        "cluster": cluster,
        "pid": pid,
        "pid_start": _process_start(pid),
        "host": socket.gethostname(),
        "started": time.time(),
    }
    partial = run_dir / f".{START_FILE}.{pid}"
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, run_dir / START_FILE)


# -- reading runs -----------------------------------------------------------------------------------------------


@dataclass
class RunInfo:
    """One run as `lit runs` shows it. `status` is one of: running, succeeded, failed, bad-input,
    infrastructure-error, interrupted, terminated, exit-N (another code), ended-without-record, damaged."""

    name: str
    path: str
    status: str
    app: Optional[str] = None
    cluster: Optional[str] = None  # None: this machine
    exit_code: Optional[int] = None
    cost: Optional[float] = None  # None: no work ran on a priced machine
    started: Optional[float] = None  # wall time (epoch seconds)
    duration: Optional[float] = None  # seconds; so far, for a running run
    message: str = ""
    pid: Optional[int] = None
    works: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _load(path: Path) -> dict[str, Any]:
    """A record file's object; ValueError when it is not one (unreadable, not JSON, not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: not a JSON object")
    return data


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _last_activity(run_dir: Path) -> Optional[float]:
    """When anything in the run's folder last changed: how long a run that left no end record lasted, roughly."""
    latest: Optional[float] = None
    for path in [run_dir, *run_dir.glob("*"), *run_dir.glob(f"{LOGS}/*")]:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        latest = mtime if latest is None else max(latest, mtime)
    return latest


def work_logs(run_dir: Path, works: Optional[list[str]] = None) -> dict[str, Path]:
    """Each work's log file in the run's folder, by work name: `works` first in their order (the end record's), then
    any other (a run still going, or a work the record does not list) by name."""
    logs = run_dir / LOGS
    found: dict[str, Path] = {}
    try:
        files = sorted(logs.iterdir())
    except OSError:
        files = []
    for path in files:
        if (path.suffix != ".log" or path.name.endswith(_AGENT_SUFFIX) or path.name in _NOT_WORK_LOGS
                or not path.is_file()):
            continue
        found[path.name[:-len(".log")]] = path
    ordered = {name: found.pop(name) for name in (works or []) if name in found}
    ordered.update(found)
    return ordered


def read_run(run_dir: Path) -> RunInfo:
    """The run in `run_dir`. Never raises for a damaged record: it is a run with status `damaged` and a message."""
    info = RunInfo(name=run_dir.name, path=str(run_dir), status=DAMAGED)
    start: Optional[dict[str, Any]] = None
    start_problem = ""
    if (run_dir / START_FILE).exists():
        try:
            start = _load(run_dir / START_FILE)
        except ValueError as exc:
            start_problem = str(exc)
    if start is not None:
        info.app = start.get("app") if isinstance(start.get("app"), str) else None
        info.cluster = start.get("cluster") if isinstance(start.get("cluster"), str) else None
        info.started = _number(start.get("started"))
        pid = start.get("pid")
        info.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
    alive = _alive(start)

    end_path = run_dir / END_FILE
    if end_path.exists():
        try:
            end = _load(end_path)
        except ValueError as exc:
            if alive:  # `lit run` is writing it right now: the run is ending
                info.status = RUNNING
            else:
                info.message = str(exc)
            _finish(info, run_dir, alive)
            return info
        _apply_end(info, end, end_path)
        return info
    if start_problem:
        info.message = start_problem
    elif start is None:
        # No record at all: a run that never got to its start record, or one from before start records existed.
        info.status = UNRECORDED
        info.message = "no start or end record"
    elif alive is None:
        info.status = RUNNING
        info.message = f"started on {start.get('host')}: cannot check its process from here"
    elif alive:
        info.status = RUNNING
    else:
        info.status = UNRECORDED
        info.message = f"process {info.pid} is gone (killed?)"
    _finish(info, run_dir, alive)
    return info


def _alive(start: Optional[dict[str, Any]]) -> Optional[bool]:
    """Whether the start record's process lives: None when it ran on another host (its pid means nothing here)."""
    if start is None:
        return False
    if start.get("host") not in (None, socket.gethostname()):
        return None
    pid, pid_start = start.get("pid"), start.get("pid_start")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return False
    return process_alive(pid, pid_start if isinstance(pid_start, int) else None)


def _finish(info: RunInfo, run_dir: Path, alive: Optional[bool]) -> None:
    """Works and duration of a run without a (readable) end record."""
    info.works = list(work_logs(run_dir))
    if info.started is None:
        return
    end = time.time() if alive else _last_activity(run_dir)
    if end is not None:
        info.duration = max(0.0, end - info.started)


def _apply_end(info: RunInfo, end: dict[str, Any], end_path: Path) -> None:
    code = end.get("exit_code")
    if not isinstance(code, int) or isinstance(code, bool):
        info.status = DAMAGED
        info.message = f"{END_FILE}: no exit code"
        return
    info.exit_code = code
    info.status = _BY_EXIT_CODE.get(code, f"exit-{code}")
    info.message = end.get("message") if isinstance(end.get("message"), str) else ""
    if info.app is None and isinstance(end.get("app"), str):
        info.app = end["app"]
    info.duration = _number(end.get("elapsed"))
    if info.started is None:  # a run from before start records: it started `elapsed` before its end record
        try:
            info.started = end_path.stat().st_mtime - (info.duration or 0.0)
        except OSError:
            pass
    works = [w for w in end.get("works") or [] if isinstance(w, dict)]
    info.works = [str(w.get("name")) for w in works]
    priced = [w for w in works if w.get("instance_type")]
    if priced:
        info.cost = sum(_number(w.get("cost")) or 0.0 for w in priced)


def list_runs(home: Optional[Path] = None) -> list[RunInfo]:
    """Every run under the lit home, newest first (a run whose start is unknown last)."""
    root = runs_root(home)
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except FileNotFoundError:
        return []
    runs = [read_run(p) for p in folders]
    runs.sort(key=lambda r: (r.started is not None, r.started or 0.0, r.name), reverse=True)
    return runs


class RunNotFound(BadInput):
    """No run, or more than one, answers to the name the user gave."""


def find_run(query: str, home: Optional[Path] = None) -> Path:
    """The folder of the run named `query`, or of the only run whose name starts with it."""
    root = runs_root(home)
    if not query or "/" in query or query in (".", ".."):
        raise RunNotFound(f"{query!r} is not a run name: see `lit runs` for the runs there are")
    exact = root / query
    if exact.is_dir():
        return exact
    try:
        matches = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(query))
    except FileNotFoundError:
        matches = []
    if not matches:
        raise RunNotFound(f"no run named {query!r} (nor starting with it) in {root}: see `lit runs`")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
        raise RunNotFound(f"{query!r} starts {len(matches)} run names ({shown}): give more of the name")
    return root / matches[0]


class LogTail:
    """Reads a log file's complete lines as they are appended (a line still being written waits for its end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""

    def read(self, final: bool = False) -> list[str]:
        """The lines appended since the last read; `final`: the file is complete, so a last line without its
        newline counts too."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        return [line.decode("utf-8", errors="replace") for line in lines]
