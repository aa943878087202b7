"""What the benchmark scripts share: run `lit` with every output line timestamped, and figures with targets."""

from __future__ import annotations

import os
import re
import resource
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PROGRESS = re.compile(r"^(?P<work>\S+)\s+\| (?P<step>.*)$")


# -- running lit ----------------------------------------------------------------------------------------
@dataclass
class Line:
    t: float  # seconds from process start
    stream: str
    text: str


@dataclass
class RunResult:
    argv: list[str]
    elapsed: Optional[float] = None  # process start to exit; None if it had to be killed
    exit_code: Optional[int] = None
    timed_out: bool = False
    lines: list[Line] = field(default_factory=list)
    load: float = 0.0  # 1-minute load average as the run started
    cpu: Optional[float] = None  # CPU seconds (user + sys) the lit process used
    machine_cpu: Optional[float] = None  # CPU seconds the whole machine used meanwhile (every process, all CPUs)
    run_dir: Optional[Path] = None  # $LIT_HOME/runs/<run> this run made
    left_running: list[str] = field(default_factory=list)  # instances pending/running after the exit

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def first(self, text: str, stream: Optional[str] = None) -> Optional[float]:
        return next((line.t for line in self.lines if text in line.text and stream in (None, line.stream)), None)

    def steps(self, kinds: Mapping[str, str]) -> dict[str, dict[str, float]]:
        """work -> progress step kind -> seconds from start (first occurrence), from stderr; `kinds` maps each
        kind to the prefix of its progress line."""
        out: dict[str, dict[str, float]] = {}
        for line in self.lines:
            if line.stream != "stderr":
                continue
            match = PROGRESS.match(line.text)
            if not match:
                continue
            for kind, prefix in kinds.items():
                if match["step"].startswith(prefix):
                    out.setdefault(match["work"], {}).setdefault(kind, line.t)
        return out

    def tail(self, n: int = 20) -> str:
        return "\n".join(f"    {line.t:7.3f} {line.stream[3:]} {line.text}" for line in self.lines[-n:])


def machine_busy() -> Optional[float]:
    """CPU seconds this machine has been busy since boot, all CPUs together (/proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_lit(argv: list[str], env: dict[str, str], cwd: Path, timeout: float, log_path: Path) -> RunResult:
    """Run argv; timestamp every stdout/stderr line as it arrives (relative to just before Popen)."""
    result = RunResult(argv, load=os.getloadavg()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = machine_busy()
    lock = threading.Lock()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)

    def reader(stream: Any, name: str) -> None:
        for raw in stream:
            now = time.perf_counter() - started
            text = ANSI.sub("", raw.decode("utf-8", "replace").rstrip("\n"))
            with lock:
                result.lines.append(Line(now, name, text))

    threads = [threading.Thread(target=reader, args=(proc.stdout, "stdout"), daemon=True),
               threading.Thread(target=reader, args=(proc.stderr, "stderr"), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        result.exit_code = proc.wait(timeout)
        result.elapsed = time.perf_counter() - started
    except subprocess.TimeoutExpired:
        result.timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the session start_new_session gave this one process
        except OSError:
            pass
        proc.wait(10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # runs are one at a time: the delta is this one's
    result.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    busy_after = machine_busy()
    if busy_before is not None and busy_after is not None:
        result.machine_cpu = busy_after - busy_before
    for thread in threads:
        thread.join(5)
    result.lines.sort(key=lambda line: line.t)
    with open(log_path, "w", encoding="utf-8") as fh:
        fh.write(" ".join(argv) + "\n")
        for line in result.lines:
            fh.write(f"{line.t:9.3f} {line.stream} {line.text}\n")
        fh.write(f"exit {result.exit_code} after {result.elapsed}\n")
    return result


# N no-op CPU works run at once (parallel=True), each on its own machine: how long until every agent is up
SPREAD_APP = '''\
import lit as L


class Noop(L.LightningWork):
    def __init__(self):
        super().__init__(parallel=True, cloud_compute=L.CloudCompute("cpu"))

    def run(self):
        pass


class Spread(L.LightningFlow):
    def __init__(self):
        super().__init__()
        for i in range({n}):
            setattr(self, f"w{{i}}", Noop())

    def run(self):
        works = [getattr(self, f"w{{i}}") for i in range({n})]
        for work in works:
            work.run()
        if all(work.has_succeeded for work in works):
            self.stop("all {n} works done")


app = L.LightningApp(Spread())
'''


# -- a benchmark's folders ------------------------------------------------------------------------------
class BenchDirs:
    """A benchmark's work folder: a fresh numbered folder for each run or app; its progress lines."""

    def __init__(self, args: Any, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.counter = 0

    def log(self, message: str) -> None:
        print(f"[bench] {message}", flush=True)

    def fresh_dir(self, label: str) -> Path:
        self.counter += 1
        path = self.workdir / f"{self.counter:03d}-{label}"
        path.mkdir(parents=True)
        return path

    def write_app(self, label: str, source: str, folder: Optional[str] = None) -> Path:
        """`source` as `<label>_app.py`, alone in a fresh folder (`app-<label>` unless named): the bundle is small."""
        path = self.fresh_dir(folder or f"app-{label}") / f"{label}_app.py"
        path.write_text(source)
        return path


# -- figures --------------------------------------------------------------------------------------------
@dataclass
class Figure:
    key: str
    label: str
    unit: str
    target: float
    value: Optional[float] = None  # what is compared to the target
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "n/a"
        return "ok" if self.value <= self.target else "MISSED"


def median(values: list[float]) -> Optional[float]:
    return statistics.median(values) if values else None


# -- a benchmark's session: its work dir, test beds and results ------------------------------------------
class BenchSession:
    """What every test-bed benchmark's main() does around its figures: a work dir, SIGTERM turned into
    KeyboardInterrupt (so the beds still come down), the test beds it brought up taken down at the end, the work
    dir removed unless `keep`, then the figures printed and written as JSON."""

    def __init__(self, prefix: str, keep: bool) -> None:
        import tempfile

        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self.beds: list[Any] = []
        self.began = time.perf_counter()

    def __enter__(self) -> BenchSession:
        def on_term(signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")  # unwinds through __exit__, which takes the beds down

        signal.signal(signal.SIGTERM, on_term)
        return self

    def bed(self, hosts: int) -> Any:
        """An SSH test bed of `hosts` hosts (tests/testbed.py), taken down with the session."""
        from tests.testbed import TestBed

        t0 = time.perf_counter()
        bed = TestBed.up(hosts)
        self.beds.append(bed)
        print(f"[bench] test bed up: {hosts} hosts in {time.perf_counter() - t0:.1f} s ({bed.hosts[0].address} ... "
              f"{bed.hosts[-1].address}); work dir {self.workdir}", flush=True)
        return bed

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        for bed in self.beds:
            t0 = time.perf_counter()
            bed.down()
            print(f"[bench] test bed down in {time.perf_counter() - t0:.1f} s", flush=True)
        if self.keep:
            print(f"[bench] kept {self.workdir}")
        else:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)
        if kind is KeyboardInterrupt:
            print("[bench] interrupted", flush=True)
            return True  # the figures measured so far are still printed
        return False

    def results(self, figures: list[Figure], args: Any, json_path: Optional[Path],
                print_table: Callable[[list[Figure]], None], conditions: Optional[dict[str, Any]] = None) -> None:
        """Print every figure (the script's own table); with `json_path`, write them with the machine's conditions
        and the arguments."""
        import json
        import platform
        from dataclasses import asdict

        print(f"[bench] all figures ({time.perf_counter() - self.began:.0f} s in all):")
        print_table(figures)
        if json_path is None:
            return
        payload = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                               "cpus": os.cpu_count(), **(conditions or {}), "load_at_end": os.getloadavg()},
                   "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "figures": [{**asdict(fig), "verdict": fig.verdict} for fig in figures]}
        json_path.write_text(json.dumps(payload, indent=2, default=str))
        print(f"[bench] wrote {json_path}")
