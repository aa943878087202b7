"""The work's processes as the agent sees them: its output captured through pipes and pumped out as log frames,
and its whole process tree ended with the agent."""

from __future__ import annotations

import io
import os
import selectors
import signal
import sys

from ..errors import ExitCode
from ..protocol import FrameType
from .state import AgentState

_diagnostics_fd = 2  # the agent's own stderr, kept apart from the work's once output is captured


class Processes(AgentState):
    # -- the work's output ------------------------------------------------------------------------
    def log_loop(self) -> None:
        selector = selectors.DefaultSelector()
        for fd, stream in self.captured:
            selector.register(fd, selectors.EVENT_READ, stream)
        while selector.get_map():
            for key, _ in selector.select():
                with self.log_lock:
                    if not self._pump(key.fd, key.data):
                        selector.unregister(key.fd)

    def _pump(self, fd: int, stream: str, final: bool = False) -> bool:
        """Forward complete lines waiting on `fd`; with `final`, also a trailing partial line."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        data = self.partial[fd] + chunk
        *lines, rest = data.split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = b""
        self.partial[fd] = rest
        for line in lines:
            self.emit_log(stream, line)
        return True

    def drain_logs(self) -> None:
        """Forward everything the work printed so far (before its final status)."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        with self.log_lock:
            for fd, stream in self.captured:
                while True:
                    try:
                        chunk = os.read(fd, 65536)
                    except (BlockingIOError, OSError):
                        break
                    if not chunk:
                        break
                    self.partial[fd] += chunk
                lines = self.partial[fd].split(b"\n")
                self.partial[fd] = b""
                if lines and not lines[-1]:
                    lines.pop()
                for line in lines:
                    self.emit_log(stream, line)

    def emit_log(self, stream: str, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace")
        if self.host_log is not None:
            self.host_log.write(line + "\n")
            self.host_log.flush()
        self.send(FrameType.LOG, stream=stream, line=line)

    # -- the end ----------------------------------------------------------------------------------
    def end_tree(self, reason: str, power_off: bool = False) -> None:
        """End the work's whole process tree and this process. Powers off only when told to at init."""
        if self.ending:
            return
        self.ending = True
        if not power_off:
            try:
                self.drain_logs()  # what the work printed so far still reaches the terminal
            except OSError:
                pass
        if reason:
            try:  # to the agent's own log (fd 2 now feeds the work's captured output)
                os.write(_diagnostics_fd, f"lit agent: {reason}; ending the work\n".encode())
            except OSError:
                pass
        kill_descendants()
        for path in self.cleanup:
            if os.path.isdir(path):
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            else:
                _unlink(path)
        if power_off and self.poweroff:
            import subprocess

            subprocess.run(self.poweroff, check=False)
        os._exit(ExitCode.OK)


def capture_output() -> list[tuple[int, str]]:
    """Point fds 0, 1, 2 away from the protocol: stdin at /dev/null, stdout and stderr into pipes we read."""
    global _diagnostics_fd
    _diagnostics_fd = os.dup(2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    captured = []
    for fd, stream in ((1, "stdout"), (2, "stderr")):
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        os.set_blocking(read_end, False)
        captured.append((read_end, stream))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                  errors="replace", line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                  errors="replace", line_buffering=True)
    os.environ["PYTHONUNBUFFERED"] = "1"  # child Python processes print live too
    return captured


def descendants() -> list[int]:
    """PIDs of every process below this one (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_descendants() -> None:
    """SIGKILL every process below this one, and the rest of our process group (daemonized helpers)."""
    me = os.getpid()
    for pid in descendants():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if os.getpgid(0) == me:  # we lead our own group: whatever is left in it is the work's
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if entry.isdigit() and int(entry) != me:
                try:
                    if os.getpgid(int(entry)) == me:
                        os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
