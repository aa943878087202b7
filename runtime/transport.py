"""Byte streams to agents, and launchers that start agents. Local: a child process and its pipes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from .compute import CloudCompute
from .errors import InfrastructureError


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


class Launcher:
    """Starts agents. The local launcher spawns processes; providers start them on machines (ClusterLauncher).

    Optional capabilities have defaults here, so the orchestrator asks every launcher the same way."""

    def launch(self, spec: AgentSpec, app_file: Path) -> Launched:
        raise NotImplementedError

    def release(self, work_name: str, final: bool) -> None:
        """The work ended (final=False: it may be called again) or the app ended (final=True)."""
        return None

    def ending(self, progress: Callable[[str, str], None]) -> None:
        """The loop no longer reads the works' streams: machine progress (work, step) goes to `progress`."""
        return None

    def close(self, hurry: Optional[Callable[[], bool]] = None) -> None:
        """The app ended, every work released: remove what is left; stop waiting once hurry() is true."""
        return None

    def idle(self, work_name: str) -> Optional[float]:
        """Seconds after the work's last call before its machine is released; None: it stays up."""
        return None

    @property
    def cluster_name(self) -> Optional[str]:
        """The cluster works go to unless they name their own (`--cloud`); None: this machine."""
        return None

    def forward(self, work_name: str, port: int) -> Optional[tuple[str, int]]:
        """An address on this machine's loopback, (127.0.0.1, local port), whose connections reach `port` on the
        work's machine through lit's own connection to it (SSH, or the Kubernetes API server), so the user's
        browser sees a work's server on a machine with no route from here. None where the work runs on this
        machine (connect to its own address) or its machine is not up. Thread-safe; the forward lasts until
        close()."""
        return None

    def machine_report(self) -> dict[str, dict[str, Any]]:
        """Per work: the machine it ran on, its seconds and cost (for the run summary); {}: none to report."""
        return {}

    # -- the object store: files between works through presigned URLs, where the launcher has one --------
    def presign(self, work_name: str, op: str, key: str) -> str:
        """A URL to "put" or "get" exactly one object (`key` as works name it: "artifacts/...", "drives/...")."""
        raise InfrastructureError(NO_OBJECT_STORE)

    def store_list(self, work_name: str, prefix: str) -> list[str]:
        """The keys that start with `prefix`."""
        raise InfrastructureError(NO_OBJECT_STORE)

    def store_delete(self, work_name: str, key: str) -> bool:
        """Delete one object; False if there was none."""
        raise InfrastructureError(NO_OBJECT_STORE)

    # -- after the run ----------------------------------------------------------------------------------
    def still_up(self) -> list[str]:
        """Machines this run started that are not known to be stopped or removed."""
        return []

    def leftovers(self) -> list[str]:
        """What to tell the user about machines still up after the run, one line each (their ids, how to
        remove them); [] when nothing is left."""
        return []


NO_OBJECT_STORE = "this launcher has no object store"


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


class ForkServer:
    """The local fork server: one agent process that has imported lit and forks each work's agent."""

    def __init__(self, python: str, cwd: Path, log: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with open(log, "ab") as log_file:
            self.proc = subprocess.Popen(
                [python, "-m", "lit.runtime.agent", "forkserver", "--control-fd", str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, cwd=cwd, pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        theirs.close()
        self.control = ours
        self.exits: dict[int, int] = {}

    def fork(self, cwd: Path, env: dict[str, str], log: Path) -> tuple[int, socket.socket]:
        import array
        import json

        mine, agents = socket.socketpair()
        request = json.dumps({"cwd": str(cwd), "env": env, "log": str(log)}).encode()
        fds = array.array("i", [agents.fileno()])
        self.control.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
        agents.close()
        while True:
            reply = self._receive(timeout=30.0)
            if reply is None:
                mine.close()
                raise OSError("the local fork server did not answer")
            if "pid" in reply:
                return int(reply["pid"]), mine

    def _receive(self, timeout: float) -> Optional[dict[str, Any]]:
        import json
        import select

        readable, _, _ = select.select([self.control], [], [], timeout)
        if not readable:
            return None
        data = self.control.recv(65536)
        if not data:
            raise OSError("the local fork server ended")
        message: dict[str, Any] = json.loads(data)
        if "exit" in message:
            self.exits[int(message["exit"])] = int(message["status"])
        return message

    def exit_code(self, pid: int, timeout: float) -> Optional[int]:
        deadline = time.monotonic() + timeout
        while pid not in self.exits:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                self._receive(remaining)
            except OSError:
                return None
        return self.exits[pid]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.control.close()
        try:
            self.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class StreamSocket:
    """A transport over a connected socket: reads never block, closing ends our direction of the stream."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> bytes:
        return self.sock.recv(262144, socket.MSG_DONTWAIT)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class ForkedTransport(StreamSocket):
    """The stream to an agent the fork server made: a socket; exit codes come from the fork server."""

    def __init__(self, server: ForkServer, pid: int, sock: socket.socket) -> None:
        super().__init__(sock)
        self.server = server
        self.pid = pid

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout: float) -> Optional[int]:
        code = self.server.exit_code(self.pid, timeout)
        if code is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        return code

    def failure(self) -> Optional[Exception]:
        return None


class LocalLauncher(Launcher):
    """Each work in its own OS process on this machine, in its own working directory for the run.

    Agents are forked by a fork server that has imported lit once (LIT_FORKSERVER=0: a fresh interpreter per
    work instead)."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self.forkserver: Optional[ForkServer] = None
        self.use_forkserver = hasattr(os, "fork") and os.environ.get("LIT_FORKSERVER", "1") != "0"

    def launch(self, spec: AgentSpec, app_file: Path) -> Launched:
        short = short_name(spec.work_name)
        workdir = spec.run_dir / "works" / short
        workdir.mkdir(parents=True, exist_ok=True)
        logs = spec.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
        from .home import lit_home

        storage = {"kind": "local", "artifacts": str(spec.run_dir / "artifacts"), "drives": str(lit_home() / "drives")}
        placement = Placement("127.0.0.1", str(workdir), str(app_file), extra_init={"storage": storage})
        if self.use_forkserver:
            if self.forkserver is None or not self.forkserver.alive():
                self.forkserver = ForkServer(self.python, spec.run_dir, logs / "forkserver.log")
            pid, sock = self.forkserver.fork(workdir, env, logs / f"{short}.agent.log")
            return Launched(ForkedTransport(self.forkserver, pid, sock), lambda: placement)
        with open(logs / f"{short}.agent.log", "ab") as agent_log:
            proc = subprocess.Popen(
                [self.python, "-m", "lit.runtime.agent"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=agent_log,
                cwd=workdir, env=env, bufsize=0,
                start_new_session=True,  # Ctrl-C reaches lit only; lit ends the works itself
            )
        return Launched(ProcessTransport(proc), lambda: placement)

    # release, ending, idle, machine_report: the base's defaults (local works have no machines to report on);
    # no object store: files between works are hard links under the lit home.

    def close(self, hurry: Optional[Callable[[], bool]] = None) -> None:
        if self.forkserver is not None:
            self.forkserver.close()
            self.forkserver = None


def short_name(work_name: str) -> str:
    """"root.work_A" -> "work_A": how works are shown and how their folders are named."""
    return work_name[len("root."):] if work_name.startswith("root.") else work_name
