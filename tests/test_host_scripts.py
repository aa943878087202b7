"""The scripts lit runs on a work's machine outside the agent (runtime/host/): unpacking the bundle, attaching to
the detached agent. Run as they run on a host: extract as source to `python -c`, attach by path with -S."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lit.provisioner import hostscript
from lit.provisioner.shipping import ATTACH, EXTRACT
from lit.runtime.errors import ExitCode
from lit.runtime.host import attach, extract

ATTACH_FILE = Path(attach.__file__)


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def run_extract(target: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", EXTRACT, str(target)], input=data, capture_output=True, timeout=60)


def test_extract_is_the_module_sent_as_source() -> None:
    assert hostscript.source("lit.runtime.host.extract").decode() == EXTRACT


def test_extract_unpacks_and_marks_complete(tmp_path: Path) -> None:
    target = tmp_path / "bundles" / "abc"
    target.parent.mkdir()
    done = run_extract(target, tar_of({"app/app.py": b"print('hi')\n", "_lit/lit/x.py": b"X = 1\n"}))
    assert done.returncode == 0, done.stderr
    assert (target / "app" / "app.py").read_bytes() == b"print('hi')\n"
    assert (target / "_lit" / "lit" / "x.py").read_bytes() == b"X = 1\n"
    assert (target / extract.COMPLETE).is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["abc"]  # no temporary folder left beside it


def test_extract_loses_the_race_quietly(tmp_path: Path) -> None:
    """Another upload of the same bundle got there first: that copy stays, ours is dropped, both succeed."""
    target = tmp_path / "abc"
    target.mkdir()
    (target / "app.py").write_bytes(b"first\n")
    (target / extract.COMPLETE).touch()
    done = run_extract(target, tar_of({"app.py": b"second\n"}))
    assert done.returncode == 0, done.stderr
    assert (target / "app.py").read_bytes() == b"first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc"]


def test_extract_in_process(tmp_path: Path) -> None:
    extract.extract(io.BytesIO(tar_of({"a.txt": b"a"})), str(tmp_path / "t"))
    assert (tmp_path / "t" / "a.txt").read_bytes() == b"a"
    assert (tmp_path / "t" / extract.COMPLETE).is_file()


def test_attach_no_agent_exit_code_is_lits() -> None:
    assert attach.NO_AGENT == ExitCode.NO_AGENT


def test_attach_path_is_where_the_bundle_puts_it() -> None:
    assert ATTACH_FILE.as_posix().endswith(ATTACH.split("/", 2)[2])  # _lit/lit/runtime/host/attach.py


def test_attach_without_an_agent_exits_4(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-S", str(ATTACH_FILE), str(tmp_path / "none.sock")],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert done.returncode == ExitCode.NO_AGENT
    assert b"no agent at" in done.stderr


@pytest.fixture
def echo_server(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A unix socket server in a thread that answers each line with its upper case; a line "quit" ends it."""
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            buffered = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffered += data
                while b"\n" in buffered:
                    line, buffered = buffered.split(b"\n", 1)
                    received.append(line)
                    conn.sendall(line.upper() + b"\n")
                    if line == b"quit":
                        return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, received
    thread.join(10)
    server.close()


def test_attach_relays_both_ways(echo_server: tuple[str, list[bytes]]) -> None:
    path, received = echo_server
    big = b"x" * 600000  # more than one read on either side
    with subprocess.Popen([sys.executable, "-S", str(ATTACH_FILE), path], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"HELLO\n"
        proc.stdin.write(big + b"\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == big.upper() + b"\n"
        proc.stdin.close()  # lit is done: attach ends at the end of its input
        assert proc.wait(60) == 0
    assert received == [b"hello", big]


def test_attach_in_process_ends_when_the_agent_does(echo_server: tuple[str, list[bytes]]) -> None:
    path, _ = echo_server
    ours_in, theirs_in = os.pipe()
    theirs_out, ours_out = os.pipe()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(attach.attach(path, ours_in, ours_out)))
    thread.start()
    os.write(theirs_in, b"a\nquit\n")  # the agent answers, then ends: attach returns 0, its input still open
    thread.join(60)
    os.close(theirs_in)
    os.close(ours_in)
    os.close(ours_out)
    with os.fdopen(theirs_out, "rb") as out:
        assert out.read() == b"A\nQUIT\n"
    assert result == [0]
