"""Takes N free GPUs on a host: `lease.py TOTAL WANT OWNER` prints {"gpus": [...], "base": DIR}.

A GPU is leased by creating ~/.lit/gpu-leases/<index> (mkdir is atomic, so two runs never take one GPU). A lease
whose agent died (its pid is gone) or that never got an agent within 5 minutes is stale and taken over.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

STALE_WITHOUT_AGENT_SECONDS = 300


def stale(path: str) -> bool:
    try:
        with open(os.path.join(path, "pid")) as fh:
            return not os.path.exists("/proc/" + fh.read().strip())
    except OSError:
        try:
            return time.time() - os.path.getmtime(path) > STALE_WITHOUT_AGENT_SECONDS
        except OSError:
            return False


def take(base: str, total: int, want: int, owner: str) -> list[int]:
    """All `want` GPUs or none."""
    os.makedirs(base, mode=0o700, exist_ok=True)
    got: list[int] = []
    for index in range(total):
        path = os.path.join(base, str(index))
        try:
            os.mkdir(path)
        except FileExistsError:
            if not stale(path):
                continue
            shutil.rmtree(path, ignore_errors=True)
            try:
                os.mkdir(path)
            except FileExistsError:
                continue
        with open(os.path.join(path, "owner"), "w") as fh:
            fh.write(owner)
        got.append(index)
        if len(got) == want:
            return got
    for index in got:
        shutil.rmtree(os.path.join(base, str(index)), ignore_errors=True)
    return []


def main(argv: list[str]) -> None:
    total, want, owner = int(argv[0]), int(argv[1]), argv[2]
    base = os.path.expanduser("~/.lit/gpu-leases")
    print(json.dumps({"gpus": take(base, total, want, owner), "base": base}))


if __name__ == "__main__":
    main(sys.argv[1:])
