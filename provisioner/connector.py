"""How the launcher reaches a machine: the seam between the cloud-neutral step order and SSH.

`Connector` is SSH (paramiko, pinned host keys); tests inject one whose connections run the host-side commands
on this machine, so the launcher's bookkeeping is exercised without sshd or a cloud."""

from __future__ import annotations

from pathlib import Path

from .base import Connection, Machine
from .sshconn import SSH, wait_for_ssh


class Connector:
    """SSH to the machines of a cluster."""

    ready = "SSH ready"  # said once a new machine first answers

    def wait(self, machine: Machine, timeout: float) -> None:
        """Until the machine's SSH port accepts connections."""
        wait_for_ssh(machine, timeout)

    def connect(self, machine: Machine, key_path: str, known_hosts: Path, timeout: float = 10.0,
                keepalive: float = 5.0) -> Connection:
        """A connection that checks the host key against `known_hosts` (HostKeyChanged if it differs)."""
        return SSH(machine, key_path, known_hosts, timeout=timeout, keepalive=keepalive)
