"""Local-runtime benchmark: prints how fast `lit run` is on this machine, and optionally Lightning's figures.

    python benchmarks/bench_local.py                  # lit's figures
    python benchmarks/bench_local.py --only hello     # one figure (repeatable, or comma-separated)
    python benchmarks/bench_local.py --lightning      # the same apps under lightning-app 2.3.2, side by side
    python benchmarks/bench_local.py --json out.json  # also write the results

Figures (each app is generated in a temp dir, except the seed's hello app):
  hello          examples/hello_app.py, process start to exit                    target <= 0.5 s
  chain20        20 blocking works called one after the other, start to exit     target <= 0.8 s
  fanout20       20 parallel works sleeping 0.5 s, all done, start to exit       target <= 1.0 s
  call_overhead  one blocking work called K times: per-call time minus run()     target <= 5 ms (median)
  fanout100      100 parallel works sleeping 0.5 s: start to exit                target <= 3 s
                 and the peak PSS of the whole process tree (sum of Pss from /proc/PID/smaps_rollup over the
                 app and its descendants, sampled every 50 ms in one extra run: sampling costs CPU)
                                                                                 target <= 1 GB

It prints figures; it asserts nothing. Every run uses a fresh LIT_HOME in a temp dir.

--lightning runs the same apps under lightning-app 2.3.2 (its module is `lightning_app`, its command
`lightning_app run app APP --open-ui false`), installed into a throwaway venv that is reused when present. Its
hello app never exits, and its other apps take a while to after self.stop(), so its figure is the time until
the app printed what marks the end (the hello app's two lines, or the flow's BENCH-DONE line); the benchmark
then ends the process tree it started. If the install fails, lit's figures are printed with Lightning's
reference figures (measured by hand on this machine) beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from _runs import BenchDirs  # benchmarks/_runs.py, beside this script

REPO = Path(__file__).resolve().parent.parent
HELLO_APP = REPO / "examples" / "hello_app.py"
HELLO_LINES = ("running code A on a CPU machine", "running code B on a GPU machine")
DONE_MARKER = "BENCH-DONE"

LIGHTNING_VENV = Path("/tmp/lit-bench-lightning-venv")
LIGHTNING_REQUIREMENTS = ("lightning-app==2.3.2", "uvicorn<0.36")

TABLE_GLYPHS = "│┃━─┏┗└┡"

FIGURES = ("hello", "chain20", "fanout20", "call_overhead", "fanout100")

# Figures measured by hand for lightning-app 2.3.2 on this machine (2 cores), shown when no live figure is.
LIGHTNING_REFERENCE: dict[str, tuple[float, str]] = {
    "hello": (1.5, "both lines printed; never exits"),
    "chain20": (6.2, ""),
    "fanout20": (3.5, ""),
    "fanout100": (11.0, ""),
    "fanout100_pss": (1800.0, ""),
}

# -- the apps -------------------------------------------------------------------------------------------
# `{import_line}` makes one source serve both lit and Lightning; the rest of each app is the same.

CHAIN_APP = '''\
{import_line}


class Noop(L.LightningWork):
    def run(self):
        pass


class Chain(L.LightningFlow):
    def __init__(self):
        super().__init__()
        for i in range({n}):
            setattr(self, f"w{{i}}", Noop())

    def run(self):
        for i in range({n}):
            getattr(self, f"w{{i}}").run()
        print("{marker}", flush=True)
        self.stop("all {n} calls done")


app = L.LightningApp(Chain())
'''

FANOUT_APP = '''\
import time

{import_line}


class Sleeper(L.LightningWork):
    def __init__(self):
        super().__init__(parallel=True)

    def run(self):
        time.sleep({sleep})


class Fanout(L.LightningFlow):
    def __init__(self):
        super().__init__()
        for i in range({n}):
            setattr(self, f"w{{i}}", Sleeper())

    def run(self):
        works = [getattr(self, f"w{{i}}") for i in range({n})]
        for work in works:
            work.run()
        if all(work.has_succeeded for work in works):
            print("{marker}", flush=True)
            self.stop("all {n} works done")


app = L.LightningApp(Fanout())
'''

# A blocking work called with a counter argument (a new call each time; default cache_calls, so a finished
# call returns at once: Lightning re-runs a finished call instead when cache_calls=False). The flow notes
# time.perf_counter() as each call returns; perf_counter is CLOCK_MONOTONIC, one clock for all processes.
OVERHEAD_APP = '''\
import json
import os
import time

{import_line}


class Echo(L.LightningWork):
    def __init__(self):
        super().__init__()
        self.run_time = 0.0
        self.last = -1  # Lightning refuses attributes that __init__ did not define

    def run(self, i):
        started = time.perf_counter()
        self.last = i
        self.run_time = time.perf_counter() - started


class Bench(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.echo = Echo()
        self._t0 = None
        self._done = 0
        self._stamps = []
        self._run_times = []

    def run(self):
        if self._t0 is None:
            self._t0 = time.perf_counter()
        while self._done < {k}:
            self.echo.run(self._done)
            self._stamps.append(time.perf_counter())
            self._run_times.append(self.echo.run_time)
            self._done += 1
        with open(os.environ["BENCH_OUT"], "w") as fh:
            json.dump({{"t0": self._t0, "stamps": self._stamps, "run_times": self._run_times}}, fh)
        print("{marker}", flush=True)
        self.stop("{k} calls done")


app = L.LightningApp(Bench())
'''


# -- processes ------------------------------------------------------------------------------------------
def _proc_stat(pid: int) -> Optional[tuple[int, int]]:
    """(ppid, start time in clock ticks) of `pid`, or None if it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below `root`, as pid -> start time (to tell a reused pid from ours)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append((int(entry), stat[1]))
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            if pid not in out:
                out[pid] = started
                todo.append(pid)
    return out


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class PssSampler(threading.Thread):
    """Sums Pss over a process and all its descendants every `interval` seconds; keeps the peak."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(name="pss-sampler", daemon=True)
        self.root = root
        self.interval = interval
        self.peak_kb = 0
        self.peak_procs = 0
        self.samples = 0
        self.cpu_seconds = 0.0  # what sampling cost (it competes with the app for the CPUs)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.thread_time()
            pids = [self.root, *descendants(self.root)]
            total = sum(pss_kb(pid) for pid in pids)
            self.cpu_seconds += time.thread_time() - started
            self.samples += 1
            if total > self.peak_kb:
                self.peak_kb, self.peak_procs = total, len(pids)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5.0)


def end_tree(proc: subprocess.Popen[bytes], known: dict[int, int], grace: float = 5.0) -> None:
    """End a process we started (leader of the session we created) and every process below it.

    SIGTERM first (lit and Lightning both clean up on it), SIGKILL what is left after `grace`. Descendants in
    other sessions (lit starts each agent in its own) are signalled by pid, each checked against its start time.
    """
    known = {**known, **descendants(proc.pid)}

    def signal_all(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # the group start_new_session made for this run
        except OSError:
            pass
        for pid, started in known.items():
            stat = _proc_stat(pid)
            if stat is not None and stat[1] == started:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = [pid for pid, started in known.items() if (_proc_stat(pid) or (0, -1))[1] == started]
        if proc.poll() is not None and not alive:
            break
        time.sleep(0.05)
    signal_all(signal.SIGKILL)
    try:
        proc.wait(5.0)
    except subprocess.TimeoutExpired:
        pass


def become_subreaper() -> bool:
    """Orphans below us (a work's process its app left behind) get re-parented to us, so we see them."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans() -> None:
    """Collect the exit status of re-parented orphans that ended (call only after proc.wait())."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _shm_semaphores() -> set[str]:
    try:
        return {name for name in os.listdir("/dev/shm") if name.startswith("sem.mp-")}
    except OSError:
        return set()


def remove_leaked_semaphores(before: set[str]) -> int:
    """Remove multiprocessing semaphores that appeared since `before` and that no process maps any more.

    Lightning's queues leave them in /dev/shm when its process tree is ended rather than exiting by itself.
    """
    new = _shm_semaphores() - before
    if not new:
        return 0
    mapped: set[str] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/maps", encoding="utf-8", errors="replace") as fh:
                    mapped.update(line.rsplit("/", 1)[-1].strip() for line in fh if "/dev/shm/sem.mp-" in line)
            except OSError:
                continue
    removed = 0
    for name in new - mapped:
        try:
            os.unlink(f"/dev/shm/{name}")
            removed += 1
        except OSError:
            pass
    return removed


@dataclass
class RunResult:
    elapsed: Optional[float] = None  # process start to exit; None if it had to be ended
    marks: dict[str, float] = field(default_factory=dict)  # marker -> seconds from start to its line
    exit_code: Optional[int] = None
    timed_out: bool = False
    peak_pss_mb: Optional[float] = None
    peak_procs: int = 0
    sampler_cpu: float = 0.0
    samples: int = 0
    leftovers: int = 0  # processes still alive after the app exited by itself
    tail: list[str] = field(default_factory=list)

    @property
    def all_marked(self) -> bool:
        return bool(self.marks) and all(v >= 0 for v in self.marks.values())


def run_app(cmd: list[str], cwd: Path, env: dict[str, str], markers: tuple[str, ...], timeout: float,
            end_after_markers: Optional[float] = None, sample_pss: bool = False) -> RunResult:
    """Run `cmd`, timestamping output lines that contain each marker.

    `end_after_markers`: once every marker was seen, wait that long for the process to exit by itself,
    then end its tree (for Lightning, which keeps running). None: wait for the exit (up to `timeout`).
    """
    result = RunResult(marks=dict.fromkeys(markers, -1.0))
    semaphores = _shm_semaphores()
    all_seen = threading.Event()
    if not markers:
        all_seen.set()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    sampler = PssSampler(proc.pid) if sample_pss else None
    if sampler is not None:
        sampler.start()
    known: dict[int, int] = {}

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            now = time.perf_counter() - started
            line = raw.decode("utf-8", "replace").rstrip("\n")
            log.write(f"{now:9.3f} {line}\n")
            if not any(c in line for c in TABLE_GLYPHS):  # lit's summary table would crowd out the rest
                result.tail = [*result.tail[-39:], line]
            for marker in markers:
                if result.marks[marker] < 0 and marker in line:
                    result.marks[marker] = now
            if markers and all(v >= 0 for v in result.marks.values()):
                all_seen.set()

    log = open(cwd / "output.log", "w", encoding="utf-8")  # noqa: SIM115 - closed after the reader ends
    reader = threading.Thread(target=read, name="reader", daemon=True)
    reader.start()
    deadline = started + timeout
    ended_by_us = False
    next_scan = 0.0
    while True:
        code = proc.poll()
        if code is not None:
            result.elapsed = time.perf_counter() - started
            result.exit_code = code
            break
        now = time.perf_counter()
        if now >= deadline:
            result.timed_out = not all_seen.is_set()
            ended_by_us = True
            break
        if end_after_markers is not None and all_seen.is_set():
            seen_at = max(result.marks.values(), default=0.0) + started
            if now >= seen_at + end_after_markers:
                ended_by_us = True
                break
        if end_after_markers is not None and now >= next_scan:
            known.update(descendants(proc.pid))  # an app we end: remember its tree while the root lives
            next_scan = now + 0.5
        time.sleep(0.005 if now - started < 2.0 else 0.02)
    if sampler is not None:
        sampler.stop()
        result.peak_pss_mb = sampler.peak_kb / 1024
        result.peak_procs = sampler.peak_procs
        result.sampler_cpu, result.samples = sampler.cpu_seconds, sampler.samples
    if ended_by_us:
        end_tree(proc, known)
    reap_orphans()
    # Anything that outlived the app was re-parented to us (we are a child subreaper): report and end it.
    leftovers = descendants(os.getpid())
    if leftovers:
        if not ended_by_us:
            result.tail.append(f"[bench] {len(leftovers)} process(es) outlived the app: {sorted(leftovers)}")
            result.leftovers = len(leftovers)
        end_tree(proc, leftovers, grace=1.0)
        reap_orphans()
    reader.join(5.0)
    log.close()
    if ended_by_us:
        remove_leaked_semaphores(semaphores)
    return result


# -- runtimes -------------------------------------------------------------------------------------------
@dataclass
class Runtime:
    name: str  # "lit" or "lightning"
    run_cmd: list[str]  # + [app file, ...] runs an app
    import_line: str
    env: dict[str, str]
    end_after_markers: Optional[float]  # None: the app exits by itself

    def cmd(self, app: Path, env_pairs: dict[str, str]) -> list[str]:
        extra: list[str] = []
        for key, value in env_pairs.items():
            extra += ["--env", f"{key}={value}"]
        if self.name == "lightning":
            extra += ["--open-ui", "false"]
        return [*self.run_cmd, str(app), *extra]

    def app_source(self, template: str, **values: Any) -> str:
        return template.format(import_line=self.import_line, marker=DONE_MARKER, **values)


def lit_runtime(home: Path, pycache: Optional[Path]) -> Runtime:
    """`pycache`: let Python cache bytecode there (outside the repository) instead of as the environment says."""
    exe = Path(sys.executable).parent / "lit"
    run_cmd = [str(exe), "run"] if exe.exists() else [sys.executable, "-m", "lit", "run"]
    env = {**os.environ, "LIT_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return Runtime("lit", run_cmd, "import lit as L", env, None)


def bytecode_note() -> str:
    """Whether each agent process compiles lit's sources again (no .pyc beside them and none written)."""
    import lit

    package = Path(lit.__file__).resolve().parent
    cached = (package / "__pycache__").is_dir()
    writes = not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX")
    if cached or writes:
        return "bytecode cache: available"
    return (f"bytecode cache: none (PYTHONDONTWRITEBYTECODE is set and {package} has no __pycache__): every "
            "process compiles lit from source (~10 ms CPU each); --warm-pycache measures with a cache")


def lightning_runtime(venv: Path, home: Path, log: Callable[[str], None]) -> tuple[Optional[Runtime], str]:
    """Lightning in a throwaway venv (created and installed on first use, reused after)."""
    python = venv / "bin" / "python"

    def probe() -> Optional[str]:
        for module, cli in (("lightning_app", "lightning_app"), ("lightning.app", "lightning")):
            check = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, check=False)
            if check.returncode == 0 and (venv / "bin" / cli).exists():
                return module
        return None

    module = probe() if python.exists() else None
    if module is None:
        log(f"installing {' '.join(LIGHTNING_REQUIREMENTS)} into {venv} (takes a few minutes) ...")
        try:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True,
                               timeout=300)
            pip = subprocess.run([str(python), "-m", "pip", "install", "-q", *LIGHTNING_REQUIREMENTS],
                                 capture_output=True, text=True, timeout=1200, check=False)
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"could not create the venv: {exc}"
        if pip.returncode != 0:
            errors = [ln for ln in (pip.stderr + pip.stdout).splitlines() if "ignored" not in ln]
            return None, "pip install failed: " + " | ".join(errors[-3:])
        module = probe()
        if module is None:
            return None, "installed, but neither lightning_app nor lightning.app imports"
    # lightning-app 2.3.2 (the standalone package) is `lightning_app`; the `lightning` package has lightning.app
    cli = "lightning_app" if module == "lightning_app" else "lightning"
    import_line = "import lightning_app as L" if module == "lightning_app" else "import lightning.app as L"
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1", "LIT_HOME": str(home / ".lit")}
    env.pop("VIRTUAL_ENV", None)
    return Runtime("lightning", [str(venv / "bin" / cli), "run", "app"], import_line, env, 1.0), module


# -- figures --------------------------------------------------------------------------------------------
@dataclass
class Figure:
    key: str
    label: str
    unit: str  # "s", "ms" or "MB"
    target: float
    lit: Optional[float] = None
    lit_note: str = ""
    lightning: Optional[float] = None
    lightning_note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _median(values: list[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def _p90(values: list[float]) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.9 * len(ordered) + 0.5) - 1))]


def _failure(result: RunResult) -> str:
    if result.timed_out:
        return "timeout"
    if result.exit_code not in (None, 0):
        return f"exit {result.exit_code}"
    return "markers missing"


class Bench(BenchDirs):
    def rt_app(self, rt: Runtime, name: str, template: str, **values: Any) -> Path:
        return self.write_app(name, rt.app_source(template, **values), f"{rt.name}-{name}")

    def runs(self, rt: Runtime, app: Path, runs: int, markers: tuple[str, ...], label: str,
             env_pairs: Optional[dict[str, str]] = None, sample_pss: bool = False) -> list[RunResult]:
        out = []
        for i in range(runs):
            cwd = self.fresh_dir(f"{rt.name}-{label}-run")
            env = {**rt.env}
            if rt.name == "lit":
                env["LIT_HOME"] = str(cwd / "lit-home")
            result = run_app(rt.cmd(app, env_pairs or {}), cwd, env, markers, self.args.timeout,
                             rt.end_after_markers, sample_pss)
            out.append(result)
            shown = self._shown(rt, result, markers)
            self.log(f"{rt.name} {label} run {i + 1}/{runs}: {shown}")
            if not (result.all_marked or not markers) or result.exit_code not in (None, 0) or result.timed_out:
                for line in result.tail[-15:]:
                    print(f"    | {line}")
                print(f"    | (whole output: {cwd / 'output.log'})")
                break  # a failing app fails the same way again
        return out

    @staticmethod
    def _shown(rt: Runtime, result: RunResult, markers: tuple[str, ...]) -> str:
        parts = []
        if result.elapsed is not None:
            parts.append(f"exit {result.exit_code} after {result.elapsed:.3f} s")
        elif result.timed_out:
            parts.append("timeout")
        else:
            parts.append("ended by the benchmark (did not exit by itself)")
        if markers and result.all_marked:
            parts.append(f"done at {max(result.marks.values()):.3f} s")
        if result.peak_pss_mb is not None:
            parts.append(f"peak PSS {result.peak_pss_mb:.0f} MB over {result.peak_procs} processes")
        return ", ".join(parts)

    def value(self, rt: Runtime, results: list[RunResult]) -> tuple[Optional[float], str, list[float]]:
        """lit: median start-to-exit. Lightning: median start-to-done (it does not exit by itself)."""
        values: list[float] = []
        for result in results:
            if result.timed_out or result.exit_code not in (None, 0) or not result.all_marked:
                return None, _failure(result), values
            if rt.end_after_markers is None:
                assert result.elapsed is not None
                values.append(result.elapsed)
            else:
                values.append(max(result.marks.values()))
        if not values:
            return None, "not run", values
        note = f"median of {len(values)}"
        if rt.end_after_markers is not None:
            exits = [r.elapsed for r in results if r.elapsed is not None]
            note += "; until done, " + ("never exited by itself" if not exits else
                                        f"exited by itself in {len(exits)}/{len(results)} runs")
        return _median(values), note, values

    # each figure: measure it for one runtime, fill the figure's lit or lightning side
    def set_side(self, fig: Figure, rt: Runtime, value: Optional[float], note: str) -> None:
        if rt.name == "lit":
            fig.lit, fig.lit_note = value, note
        else:
            fig.lightning, fig.lightning_note = value, note

    def hello(self, rt: Runtime, fig: Figure) -> None:
        if rt.name == "lit":
            app = HELLO_APP
        else:
            app = self.fresh_dir("lightning-hello") / "hello_app.py"
            app.write_text(HELLO_APP.read_text().replace("import lit as L", rt.import_line))
        runs = self.args.repeat if rt.name == "lit" else min(self.args.repeat, 3)
        results = self.runs(rt, app, runs, HELLO_LINES, "hello")
        value, note, values = self.value(rt, results)
        if rt.name == "lit" and values:
            p90 = _p90(values)
            both = _median([max(r.marks.values()) for r in results])
            note += f"; p90 {p90:.3f} s; both lines printed at {both:.3f} s (median)"
            fig.details["lit_runs_s"] = [round(v, 4) for v in values]
            fig.details["lit_p90_s"] = p90
        elif values:
            fig.details["lightning_runs_s"] = [round(v, 4) for v in values]
        self.set_side(fig, rt, value, note)

    def chain20(self, rt: Runtime, fig: Figure) -> None:
        app = self.rt_app(rt, "chain20", CHAIN_APP, n=20)
        runs = min(self.args.repeat, 5) if rt.name == "lit" else min(self.args.repeat, 2)
        value, note, values = self.value(rt, self.runs(rt, app, runs, (DONE_MARKER,), "chain20"))
        fig.details[f"{rt.name}_runs_s"] = [round(v, 4) for v in values]
        self.set_side(fig, rt, value, note)

    def fanout20(self, rt: Runtime, fig: Figure) -> None:
        app = self.rt_app(rt, "fanout20", FANOUT_APP, n=20, sleep=0.5)
        runs = min(self.args.repeat, 5) if rt.name == "lit" else min(self.args.repeat, 2)
        value, note, values = self.value(rt, self.runs(rt, app, runs, (DONE_MARKER,), "fanout20"))
        fig.details[f"{rt.name}_runs_s"] = [round(v, 4) for v in values]
        self.set_side(fig, rt, value, note)

    def call_overhead(self, rt: Runtime, fig: Figure) -> None:
        k = self.args.calls if rt.name == "lit" else self.args.lightning_calls
        app = self.rt_app(rt, "overhead", OVERHEAD_APP, k=k)
        out = app.parent / "measurements.json"
        results = self.runs(rt, app, 1, (DONE_MARKER,), f"call_overhead(K={k})", {"BENCH_OUT": str(out)})
        value, note, _ = self.value(rt, results)
        if value is None or not out.exists():
            self.set_side(fig, rt, None, note if value is None else "no measurements written")
            return
        data = json.loads(out.read_text())
        stamps, run_times = data["stamps"], data["run_times"]
        # call i (i >= 1) went out when call i-1 returned, in the same flow tick, so the gap between two
        # returns is one call's round trip; the first call also waits for the agent to start.
        overheads = [(stamps[i] - stamps[i - 1] - run_times[i]) * 1000 for i in range(1, len(stamps))]
        median, p90 = _median(overheads), _p90(overheads)
        first = (stamps[0] - data["t0"]) * 1000
        run_median = _median([t * 1000 for t in run_times]) or 0.0
        detail = (f"K={k}; p90 {p90:.2f} ms; max {max(overheads):.2f} ms; run() itself {run_median:.3f} ms; "
                  f"first call returned {first:.0f} ms after the flow's first run()")
        fig.details[f"{rt.name}_overhead_ms"] = {"median": median, "p90": p90, "max": max(overheads),
                                                 "first_call": first, "k": k}
        self.set_side(fig, rt, median, detail)

    def fanout100(self, rt: Runtime, fig: Figure, pss_fig: Figure) -> None:
        """Wall time from runs without the sampler (it costs CPU), then one more run that samples PSS."""
        app = self.rt_app(rt, "fanout100", FANOUT_APP, n=100, sleep=0.5)
        runs = min(self.args.repeat, 3) if rt.name == "lit" else 1
        results = self.runs(rt, app, runs, (DONE_MARKER,), "fanout100")
        value, note, values = self.value(rt, results)
        fig.details[f"{rt.name}_runs_s"] = [round(v, 4) for v in values]
        self.set_side(fig, rt, value, note)
        if value is None:
            self.set_side(pss_fig, rt, None, note)
            return
        sampled = self.runs(rt, app, 1, (DONE_MARKER,), "fanout100 with PSS sampling", sample_pss=True)
        s_value, s_note, s_values = self.value(rt, sampled)
        result = sampled[0]
        if s_value is None or result.peak_pss_mb is None:
            self.set_side(pss_fig, rt, None, s_note)
            return
        pss_fig.details[f"{rt.name}_peak_mb"] = round(result.peak_pss_mb, 1)
        pss_fig.details[f"{rt.name}_sampled_run_s"] = round(s_values[0], 4)
        self.set_side(pss_fig, rt, result.peak_pss_mb,
                      f"{result.peak_procs} processes at the peak; {result.samples} samples cost "
                      f"{result.sampler_cpu:.2f} s CPU; that run took {s_values[0]:.2f} s")


def make_figures() -> dict[str, Figure]:
    return {
        "hello": Figure("hello", "hello app: start to exit (median)", "s", 0.5),
        "chain20": Figure("chain20", "20 blocking works in sequence: start to exit", "s", 0.8),
        "fanout20": Figure("fanout20", "20 parallel works x 0.5 s: start to exit", "s", 1.0),
        "call_overhead": Figure("call_overhead", "one blocking call: overhead (median)", "ms", 5.0),
        "fanout100": Figure("fanout100", "100 parallel works x 0.5 s: start to exit", "s", 3.0),
        "fanout100_pss": Figure("fanout100_pss", "100 parallel works: peak PSS of the tree", "MB", 1024.0),
    }


def _fmt(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.0f} MB"


def print_table(figures: list[Figure], with_lightning: bool) -> None:
    header = ["figure", "lit measured", "target", "lit"]
    if with_lightning:
        header += ["lightning-app 2.3.2", "lightning / lit"]
    rows = []
    for fig in figures:
        verdict = ("OK" if fig.lit <= fig.target else "over") if fig.lit is not None else (fig.lit_note or "-")
        row = [fig.label, _fmt(fig.lit, fig.unit), f"<= {_fmt(fig.target, fig.unit)}", verdict]
        if with_lightning:
            if fig.lightning is not None:
                light = _fmt(fig.lightning, fig.unit)
            elif fig.key in LIGHTNING_REFERENCE:
                ref, _ = LIGHTNING_REFERENCE[fig.key]
                reason = f"; live: {fig.lightning_note}" if fig.lightning_note else ""
                light = f"{_fmt(ref, fig.unit)} (reference{reason})"
            else:
                light = fig.lightning_note or "-"
            other = fig.lightning if fig.lightning is not None else LIGHTNING_REFERENCE.get(fig.key, (None,))[0]
            ratio = f"{other / fig.lit:.1f}x" if other and fig.lit else "-"
            row += [light, ratio]
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print()
    for fig in figures:
        if fig.lit_note:
            print(f"  {fig.key} (lit): {fig.lit_note}")
        if with_lightning and fig.lightning_note:
            print(f"  {fig.key} (lightning): {fig.lightning_note}")


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, metavar="N",
                        help="runs of the hello app (default 10); chain20/fanout20 run min(N, 5) times, "
                             "fanout100 min(N, 3); Lightning at most 3 (hello), 2, and 1 (fanout100)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these figures (repeatable or comma-separated): {', '.join(FIGURES)}")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results here")
    parser.add_argument("--calls", type=int, default=200, metavar="K", help="blocking calls for call_overhead")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per app run (default 60)")
    parser.add_argument("--lightning", action="store_true",
                        help="also run the apps under lightning-app 2.3.2 (installed into a throwaway venv)")
    parser.add_argument("--lightning-venv", type=Path, default=LIGHTNING_VENV, metavar="DIR")
    parser.add_argument("--lightning-calls", type=int, default=30, metavar="K",
                        help="blocking calls for Lightning's call_overhead (each takes ~0.3 s there)")
    parser.add_argument("--warm-pycache", action="store_true",
                        help="run lit with a bytecode cache in the temp dir (PYTHONPYCACHEPREFIX), as an "
                             "installed wheel has; by default the environment decides")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the apps and run homes")
    args = parser.parse_args(argv)
    only = [name.strip() for item in args.only for name in item.split(",") if name.strip()]
    unknown = [name for name in only if name not in FIGURES]
    if unknown:
        parser.error(f"--only: unknown figure(s) {', '.join(unknown)}; pick from {', '.join(FIGURES)}")
    args.only = only or list(FIGURES)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="lit-bench-"))
    become_subreaper()
    bench = Bench(args, workdir)
    figures = make_figures()
    print(f"lit local-runtime benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.platform()}; work dir {workdir}", flush=True)
    load_start = _loadavg()
    print(f"  load average at start: {load_start} (other processes on this machine skew the figures)")
    pycache = workdir / "pycache" if args.warm_pycache else None
    if pycache is not None:  # fill it once, so that no measured run pays for compiling
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
        subprocess.run([sys.executable, "-c", "import lit, lit.runtime.agent, lit.runtime.orchestrator, lit.cli"],
                       env=env, check=False)
        bytecode = f"bytecode cache: warmed in {pycache} (--warm-pycache)"
    else:
        bytecode = bytecode_note()
    print(f"  {bytecode}")
    runtimes = [lit_runtime(workdir / "lit-home", pycache)]
    lightning_status = "not requested (--lightning)"
    if args.lightning:
        rt, lightning_status = lightning_runtime(args.lightning_venv, workdir / "lightning-home", bench.log)
        if rt is None:
            bench.log(f"Lightning unavailable, lit's figures only: {lightning_status}")
        else:
            lightning_status = f"{rt.run_cmd[0]} ({lightning_status})"
            runtimes.append(rt)
    try:
        for rt in runtimes:
            for name in args.only:
                bench.log(f"--- {rt.name}: {name}")
                try:
                    if name == "fanout100":
                        bench.fanout100(rt, figures["fanout100"], figures["fanout100_pss"])
                    else:
                        getattr(bench, name)(rt, figures[name])
                except Exception as exc:  # one broken figure does not hide the others
                    bench.log(f"{rt.name} {name} failed: {type(exc).__name__}: {exc}")
                    bench.set_side(figures[name], rt, None, f"benchmark error: {exc}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    selected = [f for f in figures.values() if f.key.removesuffix("_pss") in args.only]
    print_table(selected, args.lightning)
    print(f"  load average at the end: {_loadavg()}")
    if args.lightning:
        print(f"\n  lightning: {lightning_status}")
    if args.json is not None:
        payload = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "lightning": lightning_status,
            "bytecode": bytecode,
            "loadavg": {"start": load_start, "end": _loadavg()},
            "lightning_reference": {k: v[0] for k, v in LIGHTNING_REFERENCE.items()},
            "figures": [asdict(f) for f in selected],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"  results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
