"""How an agent starts: on its stdin/stdout (stdio), detached on a unix socket (an SSH session relays to it), or
forked by the local fork server; and `main`, the command line of `python -m lit.runtime.agent`."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import traceback
from typing import Any, Optional

from ..errors import ExitCode
from .core import Agent
from .proc import capture_output


def run_stdio() -> int:
    proto_in, proto_out = os.dup(0), os.dup(1)
    agent = Agent(capture_output())
    threading.Thread(target=agent.connect, args=(proto_in, proto_out), name="lit-agent-read",
                     daemon=True).start()
    return agent.serve()


def run_detached(socket_path: str, host_log: Optional[str]) -> int:
    """Detach from the caller's session, listen on `socket_path`, print "ready PID" once listening."""
    ready_r, ready_w = os.pipe()
    if os.fork() > 0:
        os.close(ready_w)
        message = os.read(ready_r, 200).decode().strip()
        print(message or "failed: the agent did not start (see its log)")
        return ExitCode.OK if message.startswith("ready") else ExitCode.FAILED
    os.close(ready_r)
    os.setsid()
    if os.fork() > 0:
        os._exit(ExitCode.OK)
    # Its own process group, whose id is the pid it reports: lit's `kill -9 -- -PID` then ends the agent and
    # every process of its work (the session leader that made the group above has exited).
    os.setpgid(0, 0)
    try:
        directory = os.path.dirname(socket_path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(socket_path)
        os.chmod(socket_path, 0o600)
        server.listen(4)
    except OSError as exc:
        os.write(ready_w, f"failed: cannot listen on {socket_path}: {exc}".encode())
        os._exit(ExitCode.FAILED)
    # Nothing of the SSH session that started us may stay open here, or it never ends: our own diagnostics
    # go to a file beside the socket.
    diagnostics = os.open(socket_path + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(diagnostics, 2)
    os.close(diagnostics)
    agent = Agent(capture_output(), detached=True, host_log=host_log)
    pid_file = socket_path + ".pid"
    with open(pid_file, "w") as fh:
        fh.write(str(os.getpid()))
    agent.cleanup += [socket_path, pid_file]  # the .log stays: why the agent ended
    signal.signal(signal.SIGTERM, lambda *_: agent.end_tree("terminated (SIGTERM)"))
    os.write(ready_w, f"ready {os.getpid()}".encode())
    os.close(ready_w)
    threading.Thread(target=agent.accept_loop, args=(server,), name="lit-agent-accept", daemon=True).start()
    threading.Thread(target=agent.heartbeat_loop, name="lit-agent-hb", daemon=True).start()
    return agent.serve()


def run_forkserver(control_fd: int) -> int:
    """Local runs: one process that has imported lit forks each work's agent (a fresh interpreter per work
    costs ~70 ms of CPU and ~10 MB; a fork costs a few ms and shares lit's pages).

    Requests arrive on the control socket: a JSON line with cwd, env and log path, plus the agent's stream as
    a passed fd. Replies: {"pid": N}, and {"exit": N, "status": S} when a child ends."""
    import array
    import json
    import select

    import lit  # noqa: F401 - what every work's app imports: loaded once, shared by every fork

    control = socket.socket(fileno=control_fd)
    children: set[int] = set()

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            control.send(json.dumps({"exit": pid, "status": code}).encode())

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # lit ends us; Ctrl-C goes to lit
    while True:
        readable, _, _ = select.select([control, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
            reap()
        if control not in readable:
            continue
        fds = array.array("i")
        data, ancdata, _, _ = control.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize))
        if not data:
            return ExitCode.OK
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        # One request per message (a SOCK_SEQPACKET socket): its JSON and the agent's stream as a passed fd.
        request = json.loads(data)
        stream = fds[0]
        for extra in fds[1:]:
            os.close(extra)
        pid = os.fork()
        if pid == 0:
            _forked_agent(request, stream, control, wake_r, wake_w)
        os.close(stream)
        children.add(pid)
        control.send(json.dumps({"pid": pid}).encode())
        reap()


def _forked_agent(request: dict[str, Any], stream: int, control: socket.socket, wake_r: int, wake_w: int) -> None:
    """In the forked child: become the work's agent, as if started fresh in its own directory."""
    code: int = ExitCode.FAILED
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        control.close()
        os.close(wake_r)
        os.close(wake_w)
        os.setsid()  # its own process group: lit ends a work and its children with one killpg
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if sys.path and sys.path[0] not in ("",):
            sys.path[0] = request["cwd"]
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 2)
        os.close(log)
        os.dup2(stream, 0)
        os.dup2(stream, 1)
        os.close(stream)
        code = run_stdio()
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def main(argv: Optional[list[str]] = None) -> int:
    import argparse

    from .. import agent

    parser = argparse.ArgumentParser(prog="python -m lit.runtime.agent", description=agent.__doc__)
    sub = parser.add_subparsers(dest="mode")
    sub.add_parser("stdio", help="the protocol on stdin/stdout (the default)")
    detached = sub.add_parser("detached", help="detach and listen on a unix socket")
    detached.add_argument("--socket", required=True)
    detached.add_argument("--log", default=None, help="also keep the work's output in this file")
    forkserver = sub.add_parser("forkserver", help="fork local agents on request (lit run's local launcher)")
    forkserver.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    if args.mode == "forkserver":
        return run_forkserver(args.control_fd)
    if args.mode == "detached":
        return run_detached(args.socket, args.log)
    return run_stdio()
