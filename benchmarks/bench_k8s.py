"""Kubernetes benchmark: brings up the test cluster (tests/k8s: a real kube-apiserver, scheduler and controller
manager, three test nodes) and prints lit's figures against it. Root; the binaries are built once per machine.

    python benchmarks/bench_k8s.py                 # every figure
    python benchmarks/bench_k8s.py --only call     # one (call, hello, spread, gpustop)

Figures:
  call     one blocking call over the pods/exec stream (through the API server): per-call time, median
           target <= 10 ms
  hello    examples/hello_app.py --cloud on the test cluster, start to exit (median; the first run, which
           ships the code to fresh pods like every run, is counted too: pods are new each run)   target <= 3 s
  spread   8 parallel no-op CPU works vs 1: start to exit, difference of medians            target <= 1.5 s
  gpustop  a GPU work's final status -> its pod gone from the API server (median)          target <= 1 s
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._runs import SPREAD_APP, BenchDirs, Figure, RunResult, median, run_lit
from benchmarks.bench_ssh import OVERHEAD_APP
from tests.k8s.cluster import Cluster

REPO = Path(__file__).resolve().parent.parent
FIGURES = ("call", "hello", "spread", "gpustop")
# The test cluster's processes by name; a test node's CPU includes its pods' (they are its children, reaped).
CLUSTER_PROCESSES = ("lit-node", "kube-apiserver", "etcd", "kube-scheduler", "kube-controller")


def cluster_cpu() -> dict[str, float]:
    """CPU seconds (user + system, with reaped children) each test-cluster component has used so far (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = dict.fromkeys(CLUSTER_PROCESSES, 0.0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if name in used:
            fields = stat[stat.rindex(")") + 2:].split()
            used[name] += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    return used

GPUSTOP_APP = '''\
import json
import os
import time

import lit as L


class Train(L.LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=L.CloudCompute("gpu"))

    def run(self):
        print("trained", flush=True)


class Wait(L.LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=L.CloudCompute("cpu"))

    def run(self):
        time.sleep(4)


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.train = Train()
        self.wait = Wait()
        self._ended = 0.0

    def run(self):
        self.train.run()
        if self.train.has_succeeded and not self._ended:
            self._ended = time.time()
            with open(os.environ["BENCH_OUT"], "w") as fh:
                json.dump({"train_ended": self._ended}, fh)
        self.wait.run()


app = L.LightningApp(Flow())
'''


class Bench(BenchDirs):
    def __init__(self, args: argparse.Namespace, workdir: Path, cluster: Cluster) -> None:
        super().__init__(args, workdir)
        self.cluster = cluster
        self.ns = "lit-bench"
        self.env = {**os.environ, "LIT_HOME": str(workdir / "lit-home"), "PYTHONUNBUFFERED": "1",
                    "LIT_STACK_ENGINE": "tests.k8s.engine:KubeEngine",
                    "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        self.lit = [sys.executable, "-m", "lit"]

    def run(self, label: str, *args: str, env: Optional[dict[str, str]] = None) -> RunResult:
        cwd = self.fresh_dir(label)
        return run_lit([*self.lit, *args], {**self.env, **(env or {})}, cwd, self.args.timeout, cwd / "output.log")

    def setup(self) -> None:
        """A namespace, lit-user bound to what `lit cluster policy` prints, and the lit cluster `kb`."""
        self.cluster.api("POST", "/api/v1/namespaces", {"metadata": {"name": self.ns}})
        printed = self.run("policy", "cluster", "policy", "--provider", "kubernetes", "--namespace", self.ns)
        text = "\n".join(line.text for line in printed.lines if line.stream == "stdout")
        role, reader = (json.loads(chunk.split("\n", 1)[1]) for chunk in text.split("# ")[1:])
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        subject = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "lit-user"}]
        self.cluster.api("POST", f"{rbac}/namespaces/{self.ns}/roles", role)
        self.cluster.api("POST", f"{rbac}/namespaces/{self.ns}/rolebindings", {
            "metadata": {"name": "lit"}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}})
        reader["metadata"]["name"] = "lit-bench-nodes"
        self.cluster.api("POST", f"{rbac}/clusterroles", reader)
        self.cluster.api("POST", f"{rbac}/clusterrolebindings", {
            "metadata": {"name": "lit-bench-nodes"}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lit-bench-nodes"}})
        created = self.run("create", "create", "cluster", "kb", "--provider", "kubernetes", "--kubeconfig",
                           str(self.cluster.user_kubeconfig("lit-user")), "--namespace", self.ns,
                           "--orphan-timeout", "30")
        if not created.ok:
            raise RuntimeError(f"lit create cluster failed:\n{created.tail()}")
        self.log(f"cluster kb in namespace {self.ns}: created in {created.elapsed:.2f} s")

    def call(self) -> Figure:
        fig = Figure("call", "one blocking call over pods/exec through the API server (median)", "ms", 10.0)
        k = self.args.calls
        app = self.write_app("overhead", OVERHEAD_APP.format(k=k))
        out = self.workdir / "overhead.json"
        result = self.run("overhead", "run", str(app), "--cloud", "kb", env={"BENCH_OUT": str(out)})
        if not result.ok:
            self.log(f"overhead run failed:\n{result.tail()}")
            return fig
        stamps = json.loads(out.read_text())["stamps"]
        per_call = [(b - a) * 1000 for a, b in zip(stamps, stamps[1:])]
        fig.value = median(per_call)
        fig.note = f"{k} calls; p90 {sorted(per_call)[int(len(per_call) * 0.9)]:.2f} ms"
        return fig

    def hello(self) -> Figure:
        fig = Figure("hello", "hello_app --cloud on the test cluster, start to exit (median)", "s", 3.0)
        times = []
        for i in range(self.args.repeat):
            result = self.run("hello", "run", str(REPO / "examples" / "hello_app.py"), "--cloud", "kb")
            if result.ok and result.elapsed is not None:
                times.append(result.elapsed)
                self.log(f"hello run {i + 1}/{self.args.repeat}: {result.elapsed:.3f} s (load {result.load:.1f})")
            else:
                self.log(f"hello run {i + 1} failed:\n{result.tail()}")
        fig.value = median(times)
        fig.note = f"{len(times)} run(s): " + ", ".join(f"{t:.2f}" for t in times)
        return fig

    def spread(self) -> Figure:
        fig = Figure("spread", "8 parallel CPU works vs 1, start to exit: difference of medians", "s", 1.5)
        medians = {}
        cpu: dict[int, list[dict[str, float]]] = {1: [], 8: []}
        for n in (1, 8):
            app = self.write_app(f"spread{n}", SPREAD_APP.format(n=n))
            times = []
            for i in range(self.args.repeat):
                before = cluster_cpu()
                result = self.run(f"spread{n}", "run", str(app), "--cloud", "kb")
                if result.ok and result.elapsed is not None:
                    times.append(result.elapsed)
                    after = cluster_cpu()
                    used = {"lit": result.cpu or 0.0, **{k: after[k] - before[k] for k in CLUSTER_PROCESSES}}
                    cpu[n].append(used)
                    busy = result.machine_cpu / result.elapsed if result.machine_cpu is not None else 0.0
                    self.log(f"spread n={n} run {i + 1}: {result.elapsed:.3f} s (load {result.load:.1f}; the machine's "
                             f"{os.cpu_count()} CPUs busy {busy:.2f}; CPU s: "
                             + ", ".join(f"{k} {v:.2f}" for k, v in used.items()) + ")")
                else:
                    self.log(f"spread n={n} run {i + 1} failed:\n{result.tail()}")
            medians[n] = median(times)
        if medians[1] is not None and medians[8] is not None:
            fig.value = medians[8] - medians[1]
            extra = {k: (median([u[k] for u in cpu[8]]) or 0.0) - (median([u[k] for u in cpu[1]]) or 0.0)
                     for k in cpu[8][0]}
            fig.note = (f"1 work {medians[1]:.2f} s, 8 works {medians[8]:.2f} s; the 7 more works cost this machine's "
                        f"{os.cpu_count()} CPUs {sum(extra.values()):.2f} CPU s more (median): "
                        + ", ".join(f"{k} {v:+.2f}" for k, v in extra.items())
                        + " (test nodes: their pods' processes included)")
        return fig

    def gpustop(self) -> Figure:
        fig = Figure("gpustop", "a GPU work's end -> its pod gone from the API server (median)", "s", 1.0)
        app = self.write_app("gpustop", GPUSTOP_APP)
        gaps = []
        for i in range(self.args.repeat):
            out = self.workdir / f"gpustop-{i}.json"
            cwd = self.fresh_dir("gpustop")
            proc = subprocess.Popen([*self.lit, "run", str(app), "--cloud", "kb"], cwd=cwd,
                                    env={**self.env, "BENCH_OUT": str(out)}, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            gone = None
            deadline = time.monotonic() + self.args.timeout
            while time.monotonic() < deadline and gone is None:
                if out.exists() and out.stat().st_size:
                    _, body = self.cluster.api(
                        "GET", f"/api/v1/namespaces/{self.ns}/pods?labelSelector=lit/work=root.train")
                    if not body.get("items"):
                        gone = time.time()
                time.sleep(0.02)
            proc.wait(timeout=self.args.timeout)
            if gone is not None:
                gaps.append(gone - json.loads(out.read_text())["train_ended"])
                self.log(f"gpustop run {i + 1}: pod gone {gaps[-1]:.3f} s after the flow saw the work succeed")
        fig.value = median(gaps)
        fig.note = f"{len(gaps)} run(s), polled every 20 ms"
        return fig


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(FIGURES), help="comma-separated figures")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=180.0)
    args = ap.parse_args(argv)
    wanted = [f for f in args.only.split(",") if f]
    with tempfile.TemporaryDirectory(prefix="lit-bench-k8s-") as tmp:
        cluster = Cluster.up()
        try:
            bench = Bench(args, Path(tmp), cluster)
            bench.setup()
            figures = [getattr(bench, name)() for name in FIGURES if name in wanted]
        finally:
            cluster.down()
    print()
    print(f"{'figure':<72} {'measured':>10} {'target':>8}  verdict")
    for fig in figures:
        value = "n/a" if fig.value is None else f"{fig.value:.3f} {fig.unit}"
        print(f"{fig.label:<72} {value:>10} {fig.target:>6} {fig.unit}  {fig.verdict}  {fig.note}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if all(f.value is not None for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())

