"""Files between machines: 200 MB from one work to another, through the orchestrator between two test-bed hosts
(ssh), and through moto's S3 with presigned URLs (the fake cloud). Prints figures; asserts nothing. Root only.

    python benchmarks/bench_files.py [--size-mb 200] [--repeat 3] [--only ssh,s3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

APP = '''
import hashlib, json, os, time
import lit as L

SIZE = int(os.environ["SIZE_MB"]) * 1024 * 1024


class Produce(L.LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=L.CloudCompute("cpu"))
        self.data = None
        self.written_at = 0.0

    def run(self):
        block = os.urandom(1024 * 1024)
        with open("big.bin", "wb") as fh:
            for i in range(SIZE // len(block)):
                fh.write(block[:-8] + i.to_bytes(8, "big"))
        self.written_at = time.time()
        self.data = L.Path("big.bin")


class Consume(L.LightningWork):
    def __init__(self):
        super().__init__(cloud_compute=L.CloudCompute("cpu"))
        self.received_at = 0.0

    def run(self, data, asked_at: float):
        self.received_at = time.time()  # run() starts once the file is here, checked by sha256


class Flow(L.LightningFlow):
    def __init__(self):
        super().__init__()
        self.p = Produce()
        self.c = Consume()
        self.asked = 0.0

    def run(self):
        self.p.run()
        if not self.asked:
            self.asked = time.time()
        self.c.run(self.p.data, self.asked)
        with open(os.environ["BENCH_OUT"], "w") as fh:
            json.dump({"written": self.p.written_at, "asked": self.asked, "received": self.c.received_at}, fh)
        self.stop("done")


app = L.LightningApp(Flow())
'''


def peak_rss_mb(pid: int, stop: list[bool], peak: list[float]) -> None:
    while not stop[0]:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak[0] = max(peak[0], int(line.split()[1]) / 1024)
        except OSError:
            return
        time.sleep(0.05)


def run_once(env: dict[str, str], app: Path, cloud: str, size_mb: int, work: Path) -> dict[str, float]:
    import threading

    out = work / f"out-{time.monotonic_ns()}.json"
    proc = subprocess.Popen([sys.executable, "-m", "lit", "run", str(app), "--cloud", cloud, "--env",
                             f"SIZE_MB={size_mb}", "--env", f"BENCH_OUT={out}"], env=env, cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, peak = [False], [0.0]
    sampler = threading.Thread(target=peak_rss_mb, args=(proc.pid, stop, peak), daemon=True)
    sampler.start()
    _, err = proc.communicate(timeout=900)
    stop[0] = True
    if proc.returncode != 0:
        raise RuntimeError(f"lit run exited {proc.returncode}: {err[-2000:]}")
    times = json.loads(out.read_text())
    return {"upload_s": times["asked"] - times["written"], "download_s": times["received"] - times["asked"],
            "peak_rss_mb": peak[0]}


def bench_ssh(size_mb: int, repeat: int, work: Path) -> list[dict[str, float]]:
    from tests.testbed import TestBed

    with TestBed.up(2) as bed:
        env = {**os.environ, "LIT_HOME": str(work / "home-ssh")}
        hosts = ",".join(f"root@{h.address}" for h in bed.hosts)
        subprocess.run([sys.executable, "-m", "lit", "create", "cluster", "bench", "--provider", "ssh", "--hosts",
                        hosts, "--key", str(bed.key_path), "--known-hosts", str(bed.known_hosts_path)],
                       env=env, check=True, capture_output=True)
        return [run_once(env, work / "app" / "files_app.py", "bench", size_mb, work) for _ in range(repeat)]


def bench_s3(size_mb: int, repeat: int, work: Path) -> list[dict[str, float]]:
    from tests.fakecloud import FakeCloud

    with FakeCloud.up() as cloud:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **cloud.env,
               "LIT_HOME": str(work / "home-aws")}
        subprocess.run([sys.executable, "-m", "lit", "create", "cluster", "bench", "--provider", "aws", "--role-arn",
                        "arn:aws:iam::111122223333:role/lit-byoc", "--external-id", "lit-test-external-id"],
                       env=env, check=True, capture_output=True)
        return [run_once(env, work / "app" / "files_app.py", "bench", size_mb, work) for _ in range(repeat)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="ssh,s3")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lit-bench-files-") as tmp:
        work = Path(tmp)
        (work / "app").mkdir()
        (work / "app" / "files_app.py").write_text(APP)
        for name, bench in (("ssh", bench_ssh), ("s3", bench_s3)):
            if name in args.only.split(","):
                results[name] = bench(args.size_mb, args.repeat, work)
    print(f"\n{args.size_mb} MB from one work to another (median of {args.repeat}); load {os.getloadavg()[0]:.2f}")
    print(f"{'path':<42} {'upload':>10} {'download':>10} {'MB/s':>8} {'peak RSS of lit':>16}")
    labels = {"ssh": "ssh: two hosts, through the orchestrator", "s3": "aws (fake): moto S3, presigned URLs"}
    for name, runs in results.items():
        upload = statistics.median(r["upload_s"] for r in runs)
        download = statistics.median(r["download_s"] for r in runs)
        moved = download if name == "ssh" else upload + download
        rate = args.size_mb / moved if moved else 0.0
        rss = max(r["peak_rss_mb"] for r in runs)
        print(f"{labels[name]:<42} {upload:>9.2f}s {download:>9.2f}s {rate:>8.1f} {rss:>14.0f} MB")
    print("target: >= 50 MB/s between test-bed hosts through the orchestrator (the ssh row; its upload column is "
          "the producer hashing and freezing its file, not network)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
