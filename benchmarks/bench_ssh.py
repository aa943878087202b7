"""SSH-cluster benchmark: how fast `lit run --cloud` is on the multi-host test bed (real sshd in namespaces).

    /tmp/venv/bin/python benchmarks/bench_ssh.py                    # every figure
    /tmp/venv/bin/python benchmarks/bench_ssh.py --only overhead    # one figure (repeatable, or comma-separated)
    /tmp/venv/bin/python benchmarks/bench_ssh.py --repeat 3 --json out.json

It brings up its own test bed (`TestBed.up(8)`, needs root), creates its clusters in a private LIT_HOME,
prints figures beside their targets (it asserts nothing) and always takes the bed down.

Figures:
  overhead  one blocking work (cache_calls=False) called K times with a counter, 1-host cluster: the time
            between consecutive call completions as the flow sees them (perf_counter), median and p90
                                                                                      target <= 10 ms (median)
  hello     examples/hello_app.py on a 2-host cluster (one host declared with a GPU), warm bundle (one run
            first ships the code): process start to exit, median and p90 of --repeat runs (default 5)
                                                                                      target <= 1.5 s
  spread    cold hosts (~/.lit removed on every host before each run): 8 parallel no-op CPU works on an
            8-host cluster vs 1 work on a 1-host cluster, process start until the last `<work> | agent up on`
            progress line on stderr; both medians and their ratio                  target ratio <= 1.5

Each run's output, with each line timestamped from process start, is kept in the work dir (--keep to keep it);
the progress lines (connecting / shipping code / code already on the host / agent up) give the breakdown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _runs import SPREAD_APP, BenchDirs, BenchSession, Figure, RunResult, median, run_lit  # noqa: E402  (benchmarks/_runs.py, beside this script)

from tests.testbed import TestBed, require_root_and_sshd  # noqa: E402

HELLO_APP = REPO / "examples" / "hello_app.py"
HELLO_LINES = ("running code A on a CPU machine", "running code B on a GPU machine")
FIGURES = ("overhead", "hello", "spread")
N_HOSTS = 8
STEP_KINDS = {kind: kind for kind in ("connecting", "shipping code", "code already on the host", "agent up")}

OVERHEAD_APP = '''\
import json
import os
import socket
import time

import lit as L


class Echo(L.LightningWork):
    def __init__(self):
        super().__init__(cache_calls=False)
        self.last = -1
        self.calls = 0
        self.ran_on = ""

    def run(self, i):
        self.last = i
        self.calls += 1
        self.ran_on = socket.gethostname()


class Bench(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.echo = Echo()
        self._stamps = []

    def run(self):
        while len(self._stamps) < {k}:
            self.echo.run(len(self._stamps))
            self._stamps.append(time.perf_counter())
        with open(os.environ["BENCH_OUT"], "w") as fh:
            json.dump({{"stamps": self._stamps, "last": self.echo.last, "calls": self.echo.calls,
                       "host": self.echo.ran_on, "flow_host": socket.gethostname()}}, fh)
        self.stop("{k} calls done")


app = L.LightningApp(Bench())
'''


HELLO_PHASES = ("start->connecting", "connecting->code checked", "code checked->agent up",
                "agent up->outputs", "outputs->summary", "summary->exit")


def hello_phases(result: RunResult, steps: dict[str, dict[str, float]]) -> dict[str, float]:
    """A warm hello run cut at its progress lines (the slower work's time for each step)."""
    marks = [
        min((k["connecting"] for k in steps.values() if "connecting" in k), default=None),
        max((k["code already on the host"] for k in steps.values() if "code already on the host" in k),
            default=None),
        max((k["agent up"] for k in steps.values() if "agent up" in k), default=None),
        max((result.first(line) or -1.0 for line in HELLO_LINES), default=None),
        result.first("lit run: exit"),
        result.elapsed,
    ]
    out: dict[str, float] = {}
    previous: Optional[float] = 0.0
    for name, mark in zip(HELLO_PHASES, marks):
        if mark is not None and mark >= 0 and previous is not None:
            out[name] = mark - previous
        previous = mark if mark is not None and mark >= 0 else None
    return out


# -- figures --------------------------------------------------------------------------------------------
def p90(values: list[float]) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))]


def fmt(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.3f} s"


class Bench(BenchDirs):
    def __init__(self, args: argparse.Namespace, workdir: Path, bed: TestBed) -> None:
        super().__init__(args, workdir)
        self.bed = bed
        home = workdir / "lit-home"
        home.mkdir()
        self.env = {**os.environ, "LIT_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.env.pop("NO_COLOR", None)
        package = REPO / "runtime"
        if args.warm_pycache:  # bytecode cached outside the repository, filled once before anything is timed
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)
            self.env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "lit"), str(package),
                            str(REPO / "provisioner")], env=self.env, capture_output=True, check=False)
            self.bytecode = f"warmed in {workdir / 'pycache'} (--warm-pycache)"
        elif os.environ.get("PYTHONDONTWRITEBYTECODE") and not (package / "__pycache__").is_dir():
            self.bytecode = ("none: PYTHONDONTWRITEBYTECODE is set and there is no __pycache__, so every lit "
                             "process compiles lit from source (--warm-pycache measures with a cache)")
        else:
            self.bytecode = "as the environment has it"
        exe = Path(sys.executable).parent / "lit"
        self.lit = [str(exe)] if exe.exists() else [sys.executable, "-m", "lit"]
        self.clusters: set[str] = set()
        self.leftover_agents = 0

    def run(self, label: str, *args: str) -> RunResult:
        cwd = self.fresh_dir(label)
        return run_lit([*self.lit, *args], self.env, cwd, self.args.timeout, cwd / "output.log")

    def cluster(self, name: str, hosts: list[int], gpus: Optional[int] = None) -> str:
        """Create cluster `name` over bed hosts `hosts` (indexes), host `gpus` declared with one GPU."""
        if name in self.clusters:
            return name
        addresses = ",".join(f"root@{self.bed.hosts[i].address}" for i in hosts)
        extra = ["--gpus", f"{self.bed.hosts[gpus].address}=1"] if gpus is not None else []
        result = self.run(f"create-{name}", "create", "cluster", name, "--provider", "ssh", "--hosts", addresses,
                          "--key", str(self.bed.key_path), "--known-hosts", str(self.bed.known_hosts_path),
                          "--orphan-timeout", "30", *extra)
        if not result.ok:
            raise RuntimeError(f"lit create cluster {name} failed (exit {result.exit_code}):\n{result.tail()}")
        self.log(f"cluster {name}: {len(hosts)} host(s), created in {fmt(result.elapsed, 's')}")
        self.clusters.add(name)
        return name

    def agents_left(self, wait: float = 5.0) -> int:
        """lit agents still alive on the hosts after a run exited (they should end with it), after `wait` s."""
        deadline = time.monotonic() + wait
        while True:
            left = sum(1 for host in self.bed.hosts for _, cmd in host.processes() if "lit.runtime.agent" in cmd)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def host_cpu(self) -> float:
        """CPU seconds used so far inside the hosts: each host's PID 1 (it reaps the detached agents) and its sshd
        (the listener reaps the sessions), each with what its waited-for descendants used, and anything alive
        below them. Read between runs, the difference is what a run cost the hosts."""
        stats: dict[int, tuple[int, list[int]]] = {}  # pid -> (ppid, [utime, stime, cutime, cstime])
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rfind(")") + 2:].split()
                stats[int(entry)] = (int(fields[1]), [int(x) for x in fields[11:15]])
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        seen: set[int] = set()
        todo = [pid for host in self.bed.hosts for pid in (host.init_pid, host.sshd_pid) if pid]
        while todo:
            pid = todo.pop()
            if pid in stats and pid not in seen:
                seen.add(pid)
                todo += children.get(pid, [])
        return sum(sum(stats[pid][1]) for pid in seen) / os.sysconf("SC_CLK_TCK")

    def wipe(self, hosts: list[int]) -> None:
        """Make hosts cold: no bundle, no venv, no runs (no agent of ours may be running by then)."""
        left = self.agents_left()
        if left:
            self.log(f"WARNING: {left} lit agent(s) still running on the hosts 5 s after their run exited")
            self.leftover_agents += left
        for i in hosts:
            self.bed.hosts[i].exec(["rm", "-rf", "/root/.lit"], timeout=30)

    def failed(self, what: str, result: RunResult) -> None:
        why = "timed out" if result.timed_out else f"exit {result.exit_code}"
        self.log(f"{what} FAILED ({why}); last lines:\n{result.tail()}")

    # -- 1: call overhead -----------------------------------------------------------------------------
    def overhead(self) -> Figure:
        k = self.args.calls
        fig = Figure("overhead", f"blocking call over SSH, {k} calls, median per call", "ms", 10.0)
        name = self.cluster("one", [0])
        app = self.write_app("overhead", OVERHEAD_APP.format(k=k))
        per_call: list[float] = []
        run_medians: list[float] = []
        first_calls: list[float] = []
        elapsed: list[float] = []
        for i in range(self.args.repeat_overhead):
            out = self.fresh_dir("overhead-out") / "stamps.json"
            result = self.run("overhead-run", "run", str(app), "--cloud", name, "--env", f"BENCH_OUT={out}")
            if not result.ok or not out.exists():
                self.failed(f"overhead run {i + 1}", result)
                continue
            data = json.loads(out.read_text())
            stamps = data["stamps"]
            diffs = [(b - a) * 1000 for a, b in zip(stamps, stamps[1:])]
            per_call += diffs
            run_medians.append(statistics.median(diffs))
            elapsed.append(result.elapsed or 0.0)
            up = result.first("agent up")
            first_calls.append(up or -1)
            self.log(f"overhead run {i + 1}/{self.args.repeat_overhead}: median {run_medians[-1]:.2f} ms, "
                     f"p90 {p90(diffs):.2f} ms, max {max(diffs):.2f} ms over {len(diffs)} calls; "
                     f"agent up at {fmt(up, 's')}, run {fmt(result.elapsed, 's')} (load {result.load:.1f}; "
                     f"work ran {data['calls']} times on {data['host']!r}, flow on {data['flow_host']!r})")
        fig.value = median(per_call)
        fig.details = {"median_ms": fig.value, "p90_ms": p90(per_call), "max_ms": max(per_call, default=None),
                       "min_ms": min(per_call, default=None), "calls_per_run": k, "run_medians_ms": run_medians,
                       "run_elapsed_s": elapsed, "agent_up_s": first_calls}
        fig.note = f"p90 {fmt(p90(per_call), 'ms')}, {len(per_call)} calls in {len(run_medians)} run(s)"
        return fig

    # -- 2: hello, warm -------------------------------------------------------------------------------
    def hello(self) -> Figure:
        fig = Figure("hello", "hello_app on 2 hosts, warm bundle, start to exit (median)", "s", 1.5)
        name = self.cluster("two", [1, 2], gpus=2)
        argv = ("run", str(HELLO_APP), "--cloud", name)
        warm = self.run("hello-warmup", *argv)
        if not warm.ok:
            self.failed("hello warm-up", warm)
        else:
            self.log(f"hello warm-up (ships the code): {fmt(warm.elapsed, 's')}")
        times: list[float] = []
        breakdown: list[dict[str, Any]] = []
        for i in range(self.args.repeat):
            result = self.run("hello-run", *argv)
            text = "\n".join(line.text for line in result.lines)
            if not result.ok or not all(line in text for line in HELLO_LINES) or result.elapsed is None:
                self.failed(f"hello run {i + 1}", result)
                continue
            times.append(result.elapsed)
            steps = result.steps(STEP_KINDS)
            row = {"elapsed": result.elapsed, "steps": steps, "phases": hello_phases(result, steps),
                   "outputs": {work: result.first(line) for work, line in zip(("work_A", "work_B"), HELLO_LINES)},
                   "shipped": any("shipping code" in s for s in steps.values()), "load": result.load}
            breakdown.append(row)
            self.log(f"hello run {i + 1}/{self.args.repeat}: {result.elapsed:.3f} s (load {result.load:.1f})  "
                     + self._steps_text(steps)
                     + "  outputs " + ", ".join(f"{w} {fmt(t, 's')}" for w, t in row["outputs"].items()))
        phases = {name: median([row["phases"][name] for row in breakdown if name in row["phases"]])
                  for name in HELLO_PHASES}
        if breakdown:
            self.log("hello, where the time goes (medians): "
                     + ", ".join(f"{name} {fmt(value, 's')}" for name, value in phases.items()))
        fig.value = median(times)
        fig.details = {"median_s": fig.value, "p90_s": p90(times), "runs_s": times,
                       "warmup_s": warm.elapsed, "phases_median_s": phases, "breakdown": breakdown}
        fig.note = f"p90 {fmt(p90(times), 's')}, {len(times)} run(s)"
        return fig

    @staticmethod
    def _steps_text(steps: dict[str, dict[str, float]]) -> str:
        parts = []
        for work, kinds in sorted(steps.items()):
            shown = " ".join(f"{kind.split()[0]}@{t:.2f}" for kind, t in kinds.items())
            parts.append(f"[{work}: {shown}]")
        return " ".join(parts)

    # -- 3: 8 hosts prepared concurrently vs 1 ---------------------------------------------------------
    def spread(self) -> Figure:
        fig = Figure("spread", f"{N_HOSTS} cold hosts vs 1: all agents up, ratio of medians", "x", 1.5)
        eight = self.cluster("eight", list(range(N_HOSTS)))
        one = self.cluster("one", [0])
        apps = {N_HOSTS: self.write_app("spread8", SPREAD_APP.format(n=N_HOSTS)),
                1: self.write_app("spread1", SPREAD_APP.format(n=1))}
        clusters = {N_HOSTS: (eight, list(range(N_HOSTS))), 1: (one, [0])}
        ups: dict[int, list[float]] = {N_HOSTS: [], 1: []}
        exits: dict[int, list[float]] = {N_HOSTS: [], 1: []}
        details: dict[str, Any] = {"runs": []}
        for i in range(self.args.repeat_cold):
            for n in (1, N_HOSTS):  # interleaved, so drift hits both alike
                name = clusters[n][0]
                self.wipe(list(range(N_HOSTS)))
                host_cpu = self.host_cpu()
                result = self.run(f"spread{n}-run", "run", str(apps[n]), "--cloud", name)
                self.agents_left()
                host_cpu = self.host_cpu() - host_cpu
                steps = result.steps(STEP_KINDS)
                up_times = [kinds["agent up"] for kinds in steps.values() if "agent up" in kinds]
                hosts_used = {line.text.rsplit(" ", 1)[-1] for line in result.lines if "| agent up on" in line.text}
                if not result.ok or len(up_times) != n:
                    self.failed(f"spread n={n} run {i + 1}", result)
                    continue
                shipped = sum("shipping code" in kinds for kinds in steps.values())
                ups[n].append(max(up_times))
                exits[n].append(result.elapsed or 0.0)
                details["runs"].append({"works": n, "all_up_s": max(up_times), "first_up_s": min(up_times),
                                        "elapsed_s": result.elapsed, "hosts": sorted(hosts_used),
                                        "shipped": shipped, "steps": steps, "lit_cpu_s": result.cpu,
                                        "hosts_cpu_s": host_cpu})
                connect = [kinds["connecting"] for kinds in steps.values() if "connecting" in kinds]
                self.log(f"spread n={n} run {i + 1}/{self.args.repeat_cold}: all {n} up at {max(up_times):.3f} s "
                         f"(first connecting {min(connect, default=0):.3f} s, first up {min(up_times):.3f} s), "
                         f"{len(hosts_used)} distinct host(s), {shipped} shipped, exit at {fmt(result.elapsed, 's')} "
                         f"(load {result.load:.1f}; CPU: lit {result.cpu or 0:.2f} s, hosts {host_cpu:.2f} s)")
                if n == N_HOSTS or self.args.verbose:
                    self.log("    " + self._steps_text(steps))
        m8, m1 = median(ups[N_HOSTS]), median(ups[1])
        fig.value = m8 / m1 if m8 is not None and m1 else None
        fig.details = {"all_up_8_s": ups[N_HOSTS], "all_up_1_s": ups[1], "median_8_s": m8, "median_1_s": m1,
                       "exit_8_s": exits[N_HOSTS], "exit_1_s": exits[1], "leftover_agents": self.leftover_agents,
                       **details}
        host_cpu = {n: median([r["hosts_cpu_s"] for r in details["runs"] if r["works"] == n]) for n in (1, N_HOSTS)}
        lit_cpu = {n: median([r["lit_cpu_s"] for r in details["runs"] if r["works"] == n]) for n in (1, N_HOSTS)}
        fig.details.update({"hosts_cpu_median_s": host_cpu, "lit_cpu_median_s": lit_cpu})
        fig.note = (f"8 hosts {fmt(m8, 's')} vs 1 host {fmt(m1, 's')} (medians of {len(ups[N_HOSTS])} and "
                    f"{len(ups[1])} cold runs)")
        if host_cpu[N_HOSTS] is not None and host_cpu[1] is not None:
            fig.note += (f"; CPU used in the hosts {host_cpu[N_HOSTS]:.2f} s vs {host_cpu[1]:.2f} s, by lit "
                         f"{lit_cpu[N_HOSTS] or 0:.2f} s vs {lit_cpu[1] or 0:.2f} s: all bed hosts share this "
                         f"machine's {os.cpu_count()} CPU(s)")
        return fig


def print_table(figures: list[Figure]) -> None:
    print()
    print(f"{'figure':<10} {'value':>11} {'target':>11}  {'':6}  what")
    for fig in figures:
        print(f"{fig.key:<10} {fmt(fig.value, fig.unit):>11} {'<= ' + fmt(fig.target, fig.unit):>11}  "
              f"{fig.verdict:6}  {fig.label}; {fig.note}")
    print()


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--only", action="append", default=[], help=f"figures to run: {', '.join(FIGURES)}")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of the hello app (default 5); also "
                                                          "the default of --repeat-cold and --repeat-overhead")
    ap.add_argument("--repeat-cold", type=int, default=None, help="cold runs of each spread app (default: --repeat)")
    ap.add_argument("--repeat-overhead", type=int, default=None,
                    help="runs of the call-overhead app (default: min(3, --repeat))")
    ap.add_argument("--calls", type=int, default=200, help="blocking calls per overhead run (default 200)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds before one `lit run` is killed")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--warm-pycache", action="store_true",
                    help="let the local lit processes cache bytecode (in the work dir) even if "
                         "PYTHONDONTWRITEBYTECODE is set")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (apps, LIT_HOME, timestamped logs)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    chosen = [part.strip() for value in args.only for part in value.split(",") if part.strip()] or list(FIGURES)
    unknown = [c for c in chosen if c not in FIGURES]
    if unknown:
        ap.error(f"--only: unknown figure(s) {unknown}; choose from {', '.join(FIGURES)}")
    args.only = [f for f in FIGURES if f in chosen]
    if args.repeat < 1 or args.calls < 2:
        ap.error("--repeat must be >= 1 and --calls >= 2")
    args.repeat_cold = args.repeat_cold or args.repeat
    args.repeat_overhead = args.repeat_overhead or min(3, args.repeat)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    reason = require_root_and_sshd()
    if reason:
        print(f"[bench] cannot bring up the test bed: {reason}", file=sys.stderr)
        return 2

    figures: list[Figure] = []
    conditions: dict[str, Any] = {}
    with BenchSession("lit-bench-ssh-", args.keep) as session:
        bed = session.bed(N_HOSTS)
        bench = Bench(args, session.workdir, bed)
        bench.log(f"local bytecode cache: {bench.bytecode}")
        conditions = {"bytecode": bench.bytecode, "load_at_start": os.getloadavg()}
        bench.log(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)")
        for key in args.only:
            try:
                figures.append(getattr(bench, key)())
            except Exception as exc:  # one broken figure must not hide the others
                bench.log(f"{key}: {type(exc).__name__}: {exc}")
                figures.append(Figure(key, key, "s", 0.0, note=f"error: {exc}"))
            print_table(figures[-1:])
    session.results(figures, args, args.json, print_table, conditions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
