"""Byte streams to agents, and launchers that start agents. Local: a child process and its pipes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from .compute import CloudCompute


class Transport(Protocol):
    """An ordered byte stream to one agent."""

    def fileno(self) -> int: ...

    def read(self) -> bytes:
        """Bytes available now; b"" at end of stream; BlockingIOError when nothing is waiting."""
        ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """Close our end (the agent sees end of stream)."""
        ...

    def kill(self) -> None: ...

    def wait(self, timeout: float) -> Optional[int]:
        """The agent's exit code once it has ended, or None if still running after `timeout`."""
        ...

    def failure(self) -> Optional[Exception]:
        """Why the stream ended, when the launcher knows better than an exit code (an unreachable host)."""
        ...


@dataclass(frozen=True)
class AgentSpec:
    """What a launcher needs to start the agent for one work."""

    work_name: str
    compute: CloudCompute
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    """Where a work's agent runs: known once its machine is placed (at the latest when the agent says hello)."""

    internal_ip: str
    workdir: str
    app_file: str
    machine: str = "local"
    extra_init: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Launched:
    transport: Transport
    placement: Callable[[], Placement]


class Launcher(Protocol):
    """Starts agents. The local launcher spawns processes; providers start them on machines."""

    def launch(self, spec: AgentSpec, app_file: Path) -> Launched: ...

    def release(self, work_name: str, final: bool) -> None:
        """The work ended (final=False: it may be called again) or the app ended (final=True)."""
        ...


class ProcessTransport:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None and proc.stdin is not None
        self.proc = proc
        self._out = proc.stdout.fileno()
        self._in = proc.stdin.fileno()
        os.set_blocking(self._out, False)

    def fileno(self) -> int:
        return self._out

    def read(self) -> bytes:
        return os.read(self._out, 262144)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._in, view):]

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def kill(self) -> None:
        """SIGKILL the agent's whole process group: it leads one (start_new_session), and the work's
        children are in it unless they left on purpose."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout: float) -> Optional[int]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def failure(self) -> Optional[Exception]:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalLauncher:
    """Each work in its own OS process on this machine, in its own working directory for the run."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python

    def launch(self, spec: AgentSpec, app_file: Path) -> Launched:
        short = short_name(spec.work_name)
        workdir = spec.run_dir / "works" / short
        workdir.mkdir(parents=True, exist_ok=True)
        logs = spec.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
        with open(logs / f"{short}.agent.log", "ab") as agent_log:
            proc = subprocess.Popen(
                [self.python, "-m", "lit.runtime.agent"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=agent_log,
                cwd=workdir, env=env, bufsize=0,
                start_new_session=True,  # Ctrl-C reaches lit only; lit ends the works itself
            )
        placement = Placement("127.0.0.1", str(workdir), str(app_file))
        return Launched(ProcessTransport(proc), lambda: placement)

    def release(self, work_name: str, final: bool) -> None:
        return None


def short_name(work_name: str) -> str:
    """"root.work_A" -> "work_A": how works are shown and how their folders are named."""
    return work_name[len("root."):] if work_name.startswith("root.") else work_name
