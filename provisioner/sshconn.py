"""SSH to machines with paramiko, host keys checked strictly from the first contact.

Every paramiko and socket error is mapped to lit's errors here, in one place.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import socket
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

from lit.runtime.errors import BadInput, InfrastructureError

from .base import Connection, HostKeyChanged, Machine, Unreachable
from .retry import retry


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


# known_hosts files are read, written and matched by paramiko's HostKeys (hashed names, several keys per host,
# comments), never split by hand. lit writes one plain `HOST KIND BASE64` line per pin, as OpenSSH does unhashed.


def known_hosts_line(machine: Machine, key: Any) -> str:
    """The known_hosts line (no newline) that pins `key` for `machine`."""
    paramiko = _paramiko()
    return str(paramiko.hostkeys.HostKeyEntry([host_entry(machine)], key).to_line()).rstrip("\n")


def key_from_line(line: str) -> Any:
    """The key of one known_hosts line (`HOSTS KIND BASE64`)."""
    paramiko = _paramiko()
    try:
        entry = paramiko.hostkeys.HostKeyEntry.from_line(line.strip())
    except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError):  # bad base64, bad key bytes
        entry = None
    if entry is None:
        raise BadInput(f"not a known_hosts line with a key paramiko can read: {line.strip()[:80]!r}")
    return entry.key


def public_key(text: str) -> Any:
    """The key of an OpenSSH public key line (`KIND BASE64 [COMMENT]`, as in a .pub file or cloud-init)."""
    paramiko = _paramiko()
    try:
        return paramiko.PKey.from_type_string(*_public_key_fields(text))
    except (ValueError, paramiko.SSHException, paramiko.pkey.UnknownKeyType):
        raise BadInput(f"not an OpenSSH public key paramiko can read: {text.strip()[:80]!r}") from None


def _public_key_fields(text: str) -> tuple[str, bytes]:
    kind, data = text.split()[:2]
    return kind, base64.b64decode(data, validate=True)


def pinned_key(known_hosts: Path, machine: Machine) -> Optional[Any]:
    """The key a known_hosts file pins for `machine` (its first, when it pins several kinds), hashed host names
    included; None if it pins none. The file must exist."""
    paramiko = _paramiko()
    try:
        entry = paramiko.HostKeys(str(known_hosts)).lookup(host_entry(machine))
    except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError):
        # HostKeys.load skips lines it cannot split or whose key kind it does not know, not corrupt key data.
        raise BadInput(f"{known_hosts}: not a known_hosts file paramiko can read (a key's data is corrupt)") from None
    if not entry:
        return None
    return entry[next(iter(entry.keys()))]


def write_known_hosts(path: Path, pins: Iterable[tuple[Machine, Any]]) -> None:
    """Write a known_hosts file pinning each (machine, key), in order: atomically, and readable by its owner only
    (it decides whom lit trusts)."""
    paramiko = _paramiko()
    keys = paramiko.HostKeys()
    for machine, key in pins:
        keys.add(host_entry(machine), key.get_name(), key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # HostKeys.save keeps an existing mode
    keys.save(str(tmp))
    os.replace(tmp, path)


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


class SSH(Connection):
    """One SSH connection to a machine, with the cluster's pinned host keys (strict: unknown is refused)."""

    tunnels = True

    def __init__(self, machine: Machine, key_path: str, known_hosts: Path, timeout: float = 10.0,
                 keepalive: float = 5.0) -> None:
        self.machine = machine
        self._args = (key_path, known_hosts, timeout, keepalive)
        self._reconnect_lock = threading.Lock()
        self._connect(key_path, known_hosts, timeout, keepalive)

    def _connect(self, key_path: str, known_hosts: Path, timeout: float, keepalive: float) -> None:
        machine = self.machine
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

    def channel(self, command: str) -> Any:
        with mapped_errors(self.machine):
            transport = self.client.get_transport()
            assert transport is not None
            chan = transport.open_session(timeout=10)
            chan.exec_command(command)
            return chan

    def tunnel(self, port: int) -> Any:
        """A direct-tcpip channel to 127.0.0.1:`port` as the machine sees it (a work's server binds 0.0.0.0 there).
        A connection that dropped (a long-lived forward outlives many) is made again, with the same pinned key."""
        paramiko = _paramiko()
        with self._reconnect_lock:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                self.client.close()
                self._connect(*self._args)
                transport = self.client.get_transport()
                assert transport is not None
        try:
            return transport.open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=10)
        except paramiko.ChannelException as exc:  # sshd could not connect (nothing listens), or refuses forwarding
            raise InfrastructureError(f"{self.machine.target}: port {port}: {exc.text}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise Unreachable(f"{self.machine.target}: SSH failed: {exc}") from None

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


def wait_for_ssh(machine: Machine, timeout: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """Until the machine's SSH port accepts connections (a machine that is still booting)."""

    def connect() -> None:
        with socket.create_connection((machine.address, machine.port), timeout=2):
            pass

    try:
        # A refused connection comes back at once, so back off from 0.2 s; the 1 s cap sees a machine whose sshd
        # has just started within a second.
        retry(connect, retry_if=(OSError,), deadline=clock() + timeout, first_delay=0.2, max_delay=1.0,
              sleep=sleep, clock=clock)
    except OSError as exc:
        raise Unreachable(f"{machine.target}: SSH port not answering after {timeout:.0f} s ({exc})") from None


def quote(*parts: str) -> str:
    return " ".join(shlex.quote(p) for p in parts)
