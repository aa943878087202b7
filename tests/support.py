"""Small helpers the end-to-end tests share."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest


def require(reason: Optional[str], what: str) -> None:
    """Skip when `reason` says a requirement is missing; under CI fail instead: these tests must run there."""
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{what} must run in CI: {reason}")
        pytest.skip(reason)


def wait_line(proc: subprocess.Popen[str], text: str, timeout: float = 60, stream: str = "stdout") -> list[str]:
    """Read the process's stdout (or stderr) until a line contains `text`; the lines read so far.

    Reads the pipe's file descriptor a byte at a time, never through the file object: a buffered readline can
    take two lines from the pipe and return one, and then select() no longer says that the other is there.
    What is not read here is left in the pipe for proc.communicate()."""
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    fd = pipe.fileno()
    seen: list[str] = []
    line = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        byte = os.read(fd, 1)
        if not byte:
            break
        if byte != b"\n":
            line += byte
            continue
        seen.append(line.decode(errors="replace") + "\n")
        line.clear()
        if text in seen[-1]:
            return seen
    said = ""
    other = proc.stderr if stream == "stdout" else proc.stdout
    if proc.poll() is not None and other is not None and select.select([other.fileno()], [], [], 1.0)[0]:
        # it ended: what it said on its other stream says why (read only what is there: never blocks)
        said = f"\nit exited {proc.returncode}; its {'stderr' if stream == 'stdout' else 'stdout'}:\n" + \
            os.read(other.fileno(), 1 << 16).decode(errors="replace")[-3000:]
    raise AssertionError(f"no line with {text!r} within {timeout} s; got {[*seen, line.decode(errors='replace')]}"
                         + said)


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something true; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def demo_wheel(folder: Path) -> None:
    """A tiny wheel made by hand (the hosts reach no package index)."""
    import base64
    import hashlib
    import zipfile

    files = {
        "litdemo.py": b"VALUE = 42\n",
        "litdemo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: litdemo\nVersion: 1.0\n",
        "litdemo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: lit-tests\nRoot-Is-Purelib: true\n"
                                       b"Tag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("litdemo-1.0.dist-info/RECORD,,")
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "litdemo-1.0-py3-none-any.whl", "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr("litdemo-1.0.dist-info/RECORD", "\n".join(record) + "\n")



def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """`script` as the `pulumi` command, first on PATH (in tmp_path/bin); the file $FAKE_PULUMI_LOG names, for the
    script to record its calls in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(script)
    (bin_dir / "pulumi").chmod(0o755)
    log = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    return log

class LitCli:
    """Runs the `lit` CLI (`python -m lit`) with `env` in the folder `tmp`; remembers the processes it started
    and kills them (each in its own session) in `cleanup`."""

    timeout: float = 60  # seconds a call may take, unless it says otherwise

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.procs: list[subprocess.Popen[str]] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lit", *args]

    def __call__(self, *args: str, timeout: Optional[float] = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, cwd=self.tmp,
                              timeout=self.timeout if timeout is None else timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env, cwd=self.tmp, start_new_session=True)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
