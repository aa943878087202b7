"""PythonServer benchmark: how long a `POST /predict` takes from another work, on the SSH test bed and locally.

    python benchmarks/bench_serve.py                 # both places
    python benchmarks/bench_serve.py --only local    # no test bed (no root needed)
    python benchmarks/bench_serve.py --requests 2000 --json out.json

The app: a PythonServer (Text in, Category out, a predict() that only measures the text) and a caller work that,
once the server is ready, sends --warmup requests, then --requests timed ones on one kept-alive connection, then
--fresh timed ones each on a new connection (what `urllib.request.urlopen` or `requests.post` without a session
does). Each time is one request sent to its answer read (perf_counter, in the caller). On the bed (`TestBed.up(2)`,
needs root) the server and the caller are on two hosts; locally both are processes on this machine.

Figures (medians; p90 and max beside them), printed beside their targets (nothing is asserted):
  ssh-keepalive   request over a kept-alive connection, server and caller on two bed hosts      target <= 5 ms
  ssh-fresh       request on a new connection each time, two bed hosts                         target <= 5 ms
  local-keepalive request over a kept-alive connection, `lit run` on this machine              target <= 5 ms
  local-fresh     request on a new connection each time, on this machine                       target <= 5 ms
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _runs import BenchDirs, BenchSession, Figure, median, run_lit  # noqa: E402  (benchmarks/_runs.py, beside this script)
from bench_ssh import p90  # noqa: E402

from tests.testbed import require_root_and_sshd  # noqa: E402

PLACES = ("ssh", "local")
TARGET_MS = 5.0

SERVE_BENCH_APP = '''\
import http.client
import json
import os
import socket
import time
import urllib.parse

import lit as L
from lit.components import Category, PythonServer, Text


class Lengths(PythonServer):
    def __init__(self):
        super().__init__(input_type=Text, output_type=Category, cloud_compute=L.CloudCompute("cpu"))
        self.served_on = ""

    def setup(self):
        self.served_on = socket.gethostname()

    def predict(self, request):
        return {{"category": len(request.text)}}


def timed(conn, body):
    began = time.perf_counter()
    conn.request("POST", "/predict", body, {{"Content-Type": "application/json"}})
    response = conn.getresponse()
    answer = json.loads(response.read())
    elapsed = (time.perf_counter() - began) * 1000
    assert response.status == 200 and answer == {{"category": 5}}, (response.status, answer)
    return elapsed


class Caller(L.LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=L.CloudCompute("cpu"))
        self.keepalive_ms = []
        self.fresh_ms = []
        self.host_name = ""

    def run(self, url):
        self.host_name = socket.gethostname()
        parts = urllib.parse.urlsplit(url)
        body = json.dumps({{"text": "hello"}}).encode()
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        for _ in range({warmup}):
            timed(conn, body)
        keepalive = [timed(conn, body) for _ in range({requests})]
        conn.close()
        fresh = []
        for _ in range({fresh}):
            began = time.perf_counter()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            timed(conn, body)
            conn.close()
            fresh.append((time.perf_counter() - began) * 1000)  # connect included
        self.keepalive_ms = [round(t, 4) for t in keepalive]
        self.fresh_ms = [round(t, 4) for t in fresh]


class Bench(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.server = Lengths()
        self.caller = Caller()

    def run(self):
        self.server.run()
        if not self.server.ready:
            return
        self.caller.run(self.server.url)
        with open(os.environ["BENCH_OUT"], "w") as fh:
            json.dump({{"keepalive_ms": self.caller.keepalive_ms, "fresh_ms": self.caller.fresh_ms,
                       "server": self.server.served_on, "caller": self.caller.host_name,
                       "url": self.server.url}}, fh)
        self.stop("measured")


app = L.LightningApp(Bench())
'''


def fmt_ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def print_table(figures: list[Figure]) -> None:
    print()
    print(f"{'figure':<16} {'value':>9} {'target':>10}  {'':6}  what")
    for fig in figures:
        print(f"{fig.key:<16} {fmt_ms(fig.value):>9} {'<= ' + fmt_ms(fig.target):>10}  {fig.verdict:6}  "
              f"{fig.label}; {fig.note}")
    print()


class Bench(BenchDirs):
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(args, workdir)
        home = workdir / "lit-home"
        home.mkdir()
        self.env = {**os.environ, "LIT_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        exe = Path(sys.executable).parent / "lit"
        self.lit = [str(exe)] if exe.exists() else [sys.executable, "-m", "lit"]
        self.app = self.write_app("serve", SERVE_BENCH_APP.format(warmup=args.warmup, requests=args.requests,
                                                                   fresh=args.fresh))

    def measure(self, place: str, *cloud: str) -> list[Figure]:
        """Runs of the app (--repeat); every request's time pooled per kind."""
        where = "two bed hosts" if cloud else "this machine"
        figures = {kind: Figure(f"{place}-{kind}", f"POST /predict from another work, {what}, {where}", "ms",
                                TARGET_MS)
                   for kind, what in (("keepalive", "kept-alive connection"), ("fresh", "new connection each"))}
        pooled: dict[str, list[float]] = {"keepalive": [], "fresh": []}
        runs: list[dict[str, Any]] = []
        for i in range(self.args.repeat):
            cwd = self.fresh_dir(f"{place}-run")
            out = cwd / "times.json"
            result = run_lit([*self.lit, "run", str(self.app), *cloud, "--env", f"BENCH_OUT={out}"], self.env, cwd,
                             self.args.timeout, cwd / "output.log")
            if not result.ok or not out.exists():
                why = "timed out" if result.timed_out else f"exit {result.exit_code}"
                self.log(f"{place} run {i + 1} FAILED ({why}); last lines:\n{result.tail()}")
                continue
            data = json.loads(out.read_text())
            for kind in pooled:
                pooled[kind] += data[f"{kind}_ms"]
            runs.append({"server": data["server"], "caller": data["caller"], "url": data["url"],
                         "elapsed_s": result.elapsed, "load": result.load,
                         **{f"{kind}_median_ms": median(data[f"{kind}_ms"]) for kind in pooled}})
            self.log(f"{place} run {i + 1}/{self.args.repeat}: server on {data['server']!r} at {data['url']}, "
                     f"caller on {data['caller']!r}; kept-alive median {fmt_ms(median(data['keepalive_ms']))} "
                     f"over {len(data['keepalive_ms'])}, new connection median {fmt_ms(median(data['fresh_ms']))} "
                     f"over {len(data['fresh_ms'])} (run {result.elapsed or 0:.2f} s, load {result.load:.1f})")
        for kind, fig in figures.items():
            values = pooled[kind]
            fig.value = median(values)
            fig.note = (f"p90 {fmt_ms(p90(values))}, max {fmt_ms(max(values, default=None))}, "
                        f"{len(values)} requests in {len(runs)} run(s)")
            fig.details = {"median_ms": fig.value, "p90_ms": p90(values), "min_ms": min(values, default=None),
                           "max_ms": max(values, default=None), "runs": runs}
        return list(figures.values())


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--only", choices=PLACES, action="append", default=[], help="where to measure (default: both)")
    ap.add_argument("--requests", type=int, default=1000, help="timed kept-alive requests per run (default 1000)")
    ap.add_argument("--fresh", type=int, default=200, help="timed new-connection requests per run (default 200)")
    ap.add_argument("--warmup", type=int, default=50, help="untimed requests first (default 50)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the app per place (default 3)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds before one `lit run` is killed")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (app, LIT_HOME, timestamped logs)")
    args = ap.parse_args(argv)
    args.only = [p for p in PLACES if p in args.only] or list(PLACES)
    if args.requests < 1 or args.fresh < 1 or args.repeat < 1 or args.warmup < 0:
        ap.error("--requests, --fresh and --repeat must be >= 1, --warmup >= 0")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if "ssh" in args.only:
        reason = require_root_and_sshd()
        if reason:
            print(f"[bench] cannot bring up the test bed: {reason} (--only local measures without it)",
                  file=sys.stderr)
            return 2

    figures: list[Figure] = []
    with BenchSession("lit-bench-serve-", args.keep) as session:
        workdir = session.workdir
        bench = Bench(args, workdir)
        bench.log(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s); "
                  f"work dir {workdir}")
        for place in args.only:
            try:
                if place == "ssh":
                    bed = session.bed(2)
                    hosts = ",".join(f"root@{h.address}" for h in bed.hosts)
                    created = run_lit([*bench.lit, "create", "cluster", "bench", "--provider", "ssh", "--hosts",
                                       hosts, "--key", str(bed.key_path), "--known-hosts", str(bed.known_hosts_path),
                                       "--orphan-timeout", "30"], bench.env, workdir, args.timeout,
                                      workdir / "create.log")
                    if not created.ok:
                        raise RuntimeError(f"lit create cluster failed (exit {created.exit_code}):\n{created.tail()}")
                    new = bench.measure("ssh", "--cloud", "bench")
                else:
                    new = bench.measure("local")
                figures += new
                print_table(new)
            except Exception as exc:  # one place failing must not hide the other's figures
                bench.log(f"{place}: {type(exc).__name__}: {exc}")
    session.results(figures, args, args.json, print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
