"""How the launcher reaches a machine: the seam between the cloud-neutral step order and SSH.

`Connector` is SSH (paramiko, pinned host keys); tests inject one whose connections run the host-side commands
on this machine, so the launcher's bookkeeping is exercised without sshd or a cloud."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Protocol

from .base import Machine
from .sshconn import SSH, wait_for_ssh


class Channel(Protocol):
    """A running command's byte stream (paramiko's Channel): select()able, with its exit status."""

    exit_status: int
    status_event: Any  # threading.Event-like: set once the command has ended

    def fileno(self) -> int: ...

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def shutdown_write(self) -> None: ...

    def close(self) -> None: ...


class Connection(Protocol):
    """One verified connection to a machine (sshconn.SSH)."""

    def run(self, command: str, timeout: float = 60.0, stdin: Optional[bytes] = None) -> tuple[int, str, str]: ...

    def check(self, command: str, what: str, timeout: float = 60.0, stdin: Optional[bytes] = None) -> str: ...

    def channel(self, command: str) -> Channel: ...

    def close(self) -> None: ...


class Connector:
    """SSH to the machines of a cluster."""

    def wait(self, machine: Machine, timeout: float) -> None:
        """Until the machine's SSH port accepts connections."""
        wait_for_ssh(machine, timeout)

    def connect(self, machine: Machine, key_path: str, known_hosts: Path, timeout: float = 10.0,
                keepalive: float = 5.0) -> Connection:
        """A connection that checks the host key against `known_hosts` (HostKeyChanged if it differs)."""
        return SSH(machine, key_path, known_hosts, timeout=timeout, keepalive=keepalive)
