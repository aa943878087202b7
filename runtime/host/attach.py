"""A connection to a work's detached agent: relay stdin/stdout to the agent's unix socket.

`python -S BUNDLE/_lit/lit/runtime/host/attach.py SOCKET` runs on every connection and reconnection, so it is
small and starts fast: run by path, without importing lit or site. Exits 0 when either side ends, and 4 when no
agent listens at SOCKET (it ended or was killed)."""

from __future__ import annotations

import os
import selectors
import socket
import sys

# lit.runtime.errors.ExitCode.NO_AGENT: this script may not import lit (a test checks the two are equal).
NO_AGENT = 4
CHUNK = 262144


def attach(path: str, stdin: int = 0, stdout: int = 1) -> int:
    """Relay the file descriptors `stdin`/`stdout` to the agent at `path` until either side ends; the exit code."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
    except OSError as exc:
        sys.stderr.write(f"lit agent: no agent at {path}: {exc}\n")
        client.close()
        return NO_AGENT
    selector = selectors.DefaultSelector()
    selector.register(stdin, selectors.EVENT_READ, "in")
    selector.register(client, selectors.EVENT_READ, "sock")
    try:
        while True:
            for key, _ in selector.select():
                if key.data == "in":
                    data = os.read(stdin, CHUNK)
                    if not data:
                        return 0
                    client.sendall(data)
                else:
                    data = client.recv(CHUNK)
                    if not data:
                        return 0
                    view = memoryview(data)
                    while view:
                        view = view[os.write(stdout, view):]
    finally:
        selector.close()
        client.close()


def main(argv: list[str] | None = None) -> None:  # no typing import: it costs start time
    args = sys.argv[1:] if argv is None else argv
    sys.exit(attach(args[0]))


if __name__ == "__main__":
    main()
