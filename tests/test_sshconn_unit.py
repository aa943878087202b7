"""sshconn without sshd or root: known_hosts files through paramiko's HostKeys, strict host key checking against an
in-process paramiko server, and the wait for a booting machine's SSH port on a fake clock."""

from __future__ import annotations

import io
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lit.provisioner.base import HostKeyChanged, Machine, Unreachable
from lit.provisioner.sshconn import (
    SSH,
    host_entry,
    key_from_line,
    known_hosts_line,
    pinned_key,
    public_key,
    wait_for_ssh,
    write_known_hosts,
)
from lit.runtime.errors import BadInput


def ed25519() -> tuple[paramiko.Ed25519Key, str, str]:
    """A fresh ed25519 key (paramiko cannot generate one): (paramiko key, OpenSSH private text, public line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return paramiko.Ed25519Key.from_private_key(io.StringIO(private)), private, public.decode()


def machine(address: str = "10.1.2.3", port: int = 22) -> Machine:
    return Machine(f"me@{address}:{port}", address, "me", port)


def test_host_entry_names_the_port_only_when_it_is_not_22() -> None:
    assert host_entry(machine()) == "10.1.2.3"
    assert host_entry(machine(port=2222)) == "[10.1.2.3]:2222"


def test_a_line_is_host_kind_base64_as_lit_has_always_written_it() -> None:
    key, _, _ = ed25519()
    assert known_hosts_line(machine(port=2222), key) == f"[10.1.2.3]:2222 ssh-ed25519 {key.get_base64()}"
    assert key_from_line(known_hosts_line(machine(), key)) == key


def test_a_line_of_rsa_round_trips() -> None:
    key = paramiko.RSAKey.generate(1024)
    line = known_hosts_line(machine(), key)
    assert line.split()[:2] == ["10.1.2.3", "ssh-rsa"]
    assert key_from_line(line + "\n") == key


@pytest.mark.parametrize("line", ["10.1.2.3 ssh-ed25519", "10.1.2.3 ssh-ed25519 not*base64", "10.1.2.3 x-new AAAA"])
def test_a_line_without_a_readable_key_is_bad_input(line: str) -> None:
    with pytest.raises(BadInput, match="not a known_hosts line"):
        key_from_line(line)


def test_a_public_key_line_with_its_comment() -> None:
    key, _, public = ed25519()
    assert public_key(public + " host@example\n") == key
    with pytest.raises(BadInput, match="not an OpenSSH public key"):
        public_key("ssh-ed25519")


def test_written_pins_are_found_again_and_private(tmp_path: Path) -> None:
    a, _, _ = ed25519()
    b = paramiko.RSAKey.generate(1024)
    path = tmp_path / "cluster" / "known_hosts"
    write_known_hosts(path, [(machine("10.0.0.1"), a), (machine("10.0.0.2", 2222), b)])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == (f"{known_hosts_line(machine('10.0.0.1'), a)}\n"
                                f"{known_hosts_line(machine('10.0.0.2', 2222), b)}\n")
    assert pinned_key(path, machine("10.0.0.1")) == a
    assert pinned_key(path, machine("10.0.0.2", 2222)) == b
    assert pinned_key(path, machine("10.0.0.2")) is None  # the port is part of the name
    assert not list(tmp_path.glob("cluster/*.tmp"))


def test_pinned_key_reads_what_users_keep_in_their_known_hosts(tmp_path: Path) -> None:
    """Hashed names, comments, several names on a line, keys of kinds paramiko does not know."""
    a, _, _ = ed25519()
    b, _, _ = ed25519()
    path = tmp_path / "known_hosts"
    path.write_text("# my hosts\n\n"
                    f"{paramiko.HostKeys.hash_host('[10.0.0.5]:2200')} ssh-ed25519 {a.get_base64()}\n"
                    "10.0.0.6 sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t\n"
                    f"web,10.0.0.6 ssh-ed25519 {b.get_base64()} a comment\n")
    assert pinned_key(path, machine("10.0.0.5", 2200)) == a
    assert pinned_key(path, machine("10.0.0.6")) == b
    assert pinned_key(path, machine("10.0.0.7")) is None


def test_a_corrupt_known_hosts_file_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("10.0.0.5 ssh-ed25519 AAAA=not=base64=\n")
    with pytest.raises(BadInput, match="not a known_hosts file"):
        pinned_key(path, machine("10.0.0.5"))


# -- strict host key checking, against an in-process server --------------------------------------------------------


class AcceptAnyKey(paramiko.ServerInterface):  # type: ignore[misc]
    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: Any) -> int:
        return paramiko.AUTH_SUCCESSFUL


@pytest.fixture()
def server() -> Iterator[tuple[Machine, paramiko.Ed25519Key]]:
    """An SSH server on 127.0.0.1 presenting a fresh host key, for as many connections as the test makes."""
    host_key, _, _ = ed25519()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)  # so the thread sees `done` soon after the test
    done = threading.Event()
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            transport.add_server_key(host_key)
            transports.append(transport)
            try:
                transport.start_server(server=AcceptAnyKey())
            except (paramiko.SSHException, EOFError):
                pass  # the client refused the host key and hung up: what the strict tests want

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield machine("127.0.0.1", listener.getsockname()[1]), host_key
    done.set()
    thread.join(5)
    listener.close()
    for transport in transports:
        transport.close()


@pytest.fixture()
def client_key(tmp_path: Path) -> str:
    _, private, _ = ed25519()
    path = tmp_path / "id_ed25519"
    path.write_text(private)
    return str(path)


def test_the_pinned_key_connects(server: tuple[Machine, Any], client_key: str, tmp_path: Path) -> None:
    host, host_key = server
    write_known_hosts(tmp_path / "known_hosts", [(host, host_key)])
    with SSH(host, client_key, tmp_path / "known_hosts", timeout=5) as ssh:
        assert ssh.client.get_transport().is_authenticated()


def test_a_changed_key_is_refused(server: tuple[Machine, Any], client_key: str, tmp_path: Path) -> None:
    host, _ = server
    other, _, _ = ed25519()
    write_known_hosts(tmp_path / "known_hosts", [(host, other)])
    with pytest.raises(HostKeyChanged, match="changed") as caught:
        SSH(host, client_key, tmp_path / "known_hosts", timeout=5)
    assert "SHA256:" in str(caught.value)


def test_an_unpinned_host_is_refused(server: tuple[Machine, Any], client_key: str, tmp_path: Path) -> None:
    host, host_key = server
    elsewhere = machine(host.address, host.port + 1 if host.port < 65535 else host.port - 1)
    write_known_hosts(tmp_path / "known_hosts", [(elsewhere, host_key)])  # the right key, under another name
    with pytest.raises(HostKeyChanged, match="not pinned"):
        SSH(host, client_key, tmp_path / "known_hosts", timeout=5)


# -- waiting for a booting machine -----------------------------------------------------------------------------------


def test_wait_for_ssh_returns_once_the_port_answers() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        slept: list[float] = []
        wait_for_ssh(machine("127.0.0.1", listener.getsockname()[1]), 5, sleep=slept.append)
        assert slept == []


def test_wait_for_ssh_backs_off_then_says_how_long_it_waited() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused at once
        now = [0.0]
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            now[0] += seconds

        with pytest.raises(Unreachable, match=rf"me@127.0.0.1:{port}: SSH port not answering after 3 s \(.*refused"):
            wait_for_ssh(machine("127.0.0.1", port), 3, sleep=sleep, clock=lambda: now[0])
    assert slept == [0.2, 0.4, 0.8, 1.0]  # doubling up to 1 s, and never past the 3 s asked for
