"""MultiNode benchmark: `MultiNode(num_nodes=8)` (examples/multinode_app.py) on an 8-host SSH test bed.

    /tmp/venv/bin/python benchmarks/bench_multinode.py                 # 1 cold run, then --repeat warm runs
    /tmp/venv/bin/python benchmarks/bench_multinode.py --repeat 5 --json out.json

It brings up its own test bed (`TestBed.up(8)`, needs root), creates an 8-host cluster in a private LIT_HOME,
prints figures beside their targets (it asserts nothing) and always takes the bed down.

Figures (medians of the warm runs; the first run ships the code to cold hosts and is shown on its own):
  start     how long after the first rank started running its run() the last rank started (each rank prints
            time.time() as its run() starts; the bed's hosts share this machine's clock)      target <= 1.5 s
  e2e       `lit run` process start to exit: hosts reached, 8 nodes placed, the TCP sum at rank 0, every node
            stopped                                                                           (no target)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _runs import BenchDirs, BenchSession, Figure, RunResult, median, run_lit  # noqa: E402  (benchmarks/_runs.py, beside this script)

from tests.testbed import TestBed, require_root_and_sshd  # noqa: E402

APP = REPO / "examples" / "multinode_app.py"
N_HOSTS = 8
STARTED = re.compile(r"^ws\.(\d+)\s+\| node_rank \d+ of \d+ on (\S+) started at ([0-9.]+)$")
TOTAL = sum((rank + 1) * 10 for rank in range(N_HOSTS))


def fmt(value: Optional[float], unit: str) -> str:
    return "n/a" if value is None else f"{value:.3f} {unit}"


class Bench(BenchDirs):
    def __init__(self, args: argparse.Namespace, workdir: Path, bed: TestBed) -> None:
        super().__init__(args, workdir)
        self.bed = bed
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIT_")}
        self.env.update(LIT_HOME=str(workdir / "home"), NO_COLOR="1", COLUMNS="200")
        exe = Path(sys.executable).parent / "lit"
        self.lit = [str(exe)] if exe.exists() else [sys.executable, "-m", "lit"]

    def run(self, label: str, *args: str) -> RunResult:
        cwd = self.fresh_dir(label)
        return run_lit([*self.lit, *args], self.env, cwd, self.args.timeout, cwd / "output.log")

    def cluster(self) -> str:
        addresses = ",".join(f"root@{h.address}" for h in self.bed.hosts)
        result = self.run("create", "create", "cluster", "eight", "--provider", "ssh", "--hosts", addresses,
                          "--key", str(self.bed.key_path), "--known-hosts", str(self.bed.known_hosts_path),
                          "--orphan-timeout", "30")
        if not result.ok:
            raise RuntimeError(f"lit create cluster failed (exit {result.exit_code}):\n{result.tail()}")
        self.log(f"cluster eight: {N_HOSTS} hosts, created in {fmt(result.elapsed, 's')}")
        return "eight"

    def measure(self, cluster: str, label: str) -> Optional[dict[str, Any]]:
        result = self.run(label, "run", str(APP), "--cloud", cluster, "--env", f"MULTINODE_NODES={N_HOSTS}",
                          "--env", "MULTINODE_COMPUTE=cpu")
        starts: dict[int, float] = {}
        hosts: dict[int, str] = {}
        for line in result.lines:
            match = STARTED.match(line.text) if line.stream == "stdout" else None
            if match:
                starts[int(match[1])] = float(match[3])
                hosts[int(match[1])] = match[2]
        totals = sum(f"total {TOTAL}" in line.text for line in result.lines if line.stream == "stdout")
        if not result.ok or len(starts) != N_HOSTS or totals != N_HOSTS:
            why = "timed out" if result.timed_out else f"exit {result.exit_code}"
            self.log(f"{label} FAILED ({why}, {len(starts)} ranks started, {totals} totals); last lines:\n"
                     f"{result.tail()}")
            return None
        run = {"start_spread_s": max(starts.values()) - min(starts.values()), "e2e_s": result.elapsed,
               "distinct_hosts": len(set(hosts.values())), "load": result.load, "lit_cpu_s": result.cpu}
        self.log(f"{label}: last rank started {run['start_spread_s']:.3f} s after the first, "
                 f"exit at {fmt(result.elapsed, 's')}, {run['distinct_hosts']} distinct hosts "
                 f"(load {result.load:.1f}, lit CPU {result.cpu or 0:.2f} s)")
        return run

    def figures(self) -> list[Figure]:
        cluster = self.cluster()
        cold = self.measure(cluster, "cold")
        warm = [run for i in range(self.args.repeat) if (run := self.measure(cluster, f"warm{i + 1}"))]
        start = Figure("start", "last rank running after the first (warm median)", "s", 1.5)
        e2e = Figure("e2e", "lit run start to exit (warm median)", "s", float("inf"))
        start.value = median([r["start_spread_s"] for r in warm])
        e2e.value = median([r["e2e_s"] for r in warm])
        start.note = f"{len(warm)} warm run(s); cold run {fmt(cold and cold['start_spread_s'], 's')}"
        e2e.note = f"{len(warm)} warm run(s); cold run {fmt(cold and cold['e2e_s'], 's')}"
        start.details = e2e.details = {"cold": cold, "warm": warm}
        return [start, e2e]


def print_table(figures: list[Figure]) -> None:
    print()
    print(f"{'figure':<8} {'value':>10} {'target':>11}  {'':6}  what")
    for fig in figures:
        target = "-" if fig.target == float("inf") else "<= " + fmt(fig.target, fig.unit)
        verdict = "" if fig.target == float("inf") else fig.verdict
        print(f"{fig.key:<8} {fmt(fig.value, fig.unit):>10} {target:>11}  {verdict:6}  {fig.label}; {fig.note}")
    print()


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--repeat", type=int, default=3, help="warm runs after the cold one (default 3)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds before one `lit run` is killed")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (LIT_HOME, timestamped logs)")
    args = ap.parse_args(argv)
    reason = require_root_and_sshd()
    if reason:
        print(f"[bench] cannot bring up the test bed: {reason}", file=sys.stderr)
        return 2
    figures: list[Figure] = []
    with BenchSession("lit-bench-multinode-", args.keep) as session:
        bed = session.bed(N_HOSTS)
        print(f"[bench] load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s)", flush=True)
        figures = Bench(args, session.workdir, bed).figures()
    session.results(figures, args, args.json, print_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
