"""SSH to machines with paramiko, host keys checked strictly from the first contact.

Every paramiko and socket error is mapped to lit's errors here, in one place.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from lit.runtime.errors import BadInput, InfrastructureError

from .base import HostKeyChanged, Machine, Unreachable


def _paramiko() -> Any:
    try:
        import paramiko
    except ImportError:
        raise BadInput("SSH clusters need paramiko: pip install 'lit[ssh]'") from None
    return paramiko


def _transport_class() -> Any:
    """paramiko's Transport preferring AES-GCM: an AEAD cipher needs no per-packet HMAC, which is where paramiko
    spends its time when files stream through a channel. Servers without it fall back to the usual list."""
    paramiko = _paramiko()

    class Transport(paramiko.Transport):  # type: ignore[misc]
        _preferred_ciphers = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                              *(c for c in paramiko.Transport._preferred_ciphers if "gcm" not in c))

    return Transport


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_entry(machine: Machine) -> str:
    """How known_hosts names a host (with the port when it is not 22)."""
    return machine.address if machine.port == 22 else f"[{machine.address}]:{machine.port}"


def load_private_key(path: str) -> Any:
    paramiko = _paramiko()
    file = Path(path).expanduser()
    if not file.is_file():
        raise BadInput(f"--key {path}: no such key file")
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key_file(str(file))
        except paramiko.PasswordRequiredException:
            raise BadInput(f"--key {path}: the key is encrypted; use an unencrypted key or an ssh agent") from None
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(str(exc))
    raise BadInput(f"--key {path}: not a private key paramiko can read (ed25519, ecdsa or rsa)")


def open_socket(machine: Machine, timeout: float) -> socket.socket:
    """The TCP connection under an SSH session, with Nagle's algorithm off: SSH sends many small packets (a
    channel open, then its exec request) and Nagle held each second one back until the peer's delayed ACK,
    which cost about 40 ms per command."""
    sock = socket.create_connection((machine.address, machine.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class SSH:
    """One SSH connection to a machine, with the cluster's pinned host keys (strict: unknown is refused)."""

    def __init__(self, machine: Machine, key_path: str, known_hosts: Path, timeout: float = 10.0,
                 keepalive: float = 5.0) -> None:
        self.machine = machine
        paramiko = _paramiko()
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(str(known_hosts))
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        with mapped_errors(machine):
            self.client.connect(
                machine.address, port=machine.port, username=machine.user, pkey=load_private_key(key_path),
                sock=open_socket(machine, timeout), timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                look_for_keys=False, allow_agent=False,  # only the cluster's key: predictable, no prompts
                transport_factory=_transport_class(),
            )
            transport = self.client.get_transport()
            assert transport is not None
            transport.set_keepalive(max(1, int(keepalive)))

    def run(self, command: str, timeout: float = 60.0, stdin: Optional[bytes] = None) -> tuple[int, str, str]:
        with mapped_errors(self.machine):
            chan_in, chan_out, chan_err = self.client.exec_command(command, timeout=timeout)
            if stdin is not None:
                chan_in.write(stdin)
                chan_in.channel.shutdown_write()
            out = chan_out.read().decode(errors="replace")
            err = chan_err.read().decode(errors="replace")
            code = chan_out.channel.recv_exit_status()
        return code, out, err

    def check(self, command: str, what: str, timeout: float = 60.0, stdin: Optional[bytes] = None) -> str:
        code, out, err = self.run(command, timeout=timeout, stdin=stdin)
        if code != 0:
            detail = (err or out).strip().splitlines()[-1:] or [f"exit code {code}"]
            raise InfrastructureError(f"{self.machine.target}: {what} failed: {detail[0]}")
        return out

    def channel(self, command: str) -> Any:
        with mapped_errors(self.machine):
            transport = self.client.get_transport()
            assert transport is not None
            chan = transport.open_session(timeout=10)
            chan.exec_command(command)
            return chan

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SSH:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def mapped_errors(machine: Machine) -> Any:
    """The one place paramiko's and the socket layer's errors become lit's."""
    paramiko = _paramiko()
    try:
        yield
    except paramiko.BadHostKeyException as exc:
        raise HostKeyChanged(
            f"host key of {machine.target} changed (it now presents {fingerprint(exc.key)}, "
            f"pinned {fingerprint(exc.expected_key)}): refusing to connect. If the host was reinstalled, "
            "delete and create the cluster again") from None
    except paramiko.AuthenticationException:
        raise InfrastructureError(f"{machine.target}: the key was refused (is its public key in "
                                  f"~{machine.user}/.ssh/authorized_keys on the host?)") from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise HostKeyChanged(f"{machine.target}: host key is not pinned for this cluster: refusing to "
                                 "connect (create the cluster again to pin it)") from None
        raise Unreachable(f"{machine.target}: SSH failed: {exc}") from None
    except (socket.timeout, TimeoutError):
        raise Unreachable(f"{machine.target}: no answer (timed out)") from None
    except (OSError, EOFError) as exc:
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise Unreachable(f"{machine.target}: unreachable: {text}") from None


def scan_host_key(machine: Machine, key_path: str, timeout: float = 10.0) -> Any:
    """Trust on first use: connect, and return the key the host presents (the caller pins and shows it)."""
    paramiko = _paramiko()
    seen: dict[str, Any] = {}

    class Record(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            seen["key"] = key

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(Record())
    try:
        with mapped_errors(machine):
            client.connect(machine.address, port=machine.port, username=machine.user,
                           pkey=load_private_key(key_path), sock=open_socket(machine, timeout), timeout=timeout,
                           banner_timeout=timeout,
                           auth_timeout=timeout, look_for_keys=False, allow_agent=False)
    finally:
        client.close()
    return seen["key"]


def wait_for_ssh(machine: Machine, timeout: float) -> None:
    """Until the machine's SSH port accepts connections (a machine that is still booting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((machine.address, machine.port), timeout=2):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise Unreachable(f"{machine.target}: SSH port not answering after {timeout:.0f} s ({exc})") from None
            time.sleep(0.2)


def quote(*parts: str) -> str:
    return " ".join(shlex.quote(p) for p in parts)
