"""At create time: what the host has (Python, CPUs, memory, GPUs nvidia-smi sees), as one JSON line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys


def memory_mb() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def gpu_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except Exception:  # a broken driver must not fail the probe: the user declares GPUs with --gpus
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def main() -> None:
    print(json.dumps({"python": sys.executable, "version": list(sys.version_info[:3]), "cpus": os.cpu_count() or 1,
                      "memory_mb": memory_mb(), "gpus": gpu_count(), "home": os.path.expanduser("~")}))


if __name__ == "__main__":
    main()
