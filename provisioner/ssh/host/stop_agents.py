"""Stops every lit agent on a host (by the pid files agents keep beside their sockets); prints how many."""

from __future__ import annotations

import glob
import os
import signal


def main() -> None:
    stopped = 0
    for pid_file in glob.glob(os.path.expanduser("~/.lit/agents/*.pid")):
        try:
            with open(pid_file) as fh:
                pid = int(fh.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"lit.runtime.agent" not in fh.read():
                    continue  # the pid was reused by another process
            os.kill(pid, signal.SIGTERM)
            stopped += 1
        except (OSError, ValueError):
            pass
    print(stopped)


if __name__ == "__main__":
    main()
