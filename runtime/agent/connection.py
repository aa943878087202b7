"""The agent's side of the stream: frames out (under one lock), frames in (dispatched through the table in
core.Agent.frame_handlers), connections coming and going (detached mode), and the heartbeat."""

from __future__ import annotations

import os
import platform
import socket
import threading
import time
from typing import Any, Optional

from ..errors import ProtocolError
from ..protocol import PROTOCOL_VERSION, Frame, FrameType, check_hello
from .state import AgentState


class Connection(AgentState):
    # -- output -----------------------------------------------------------------------------------
    def send(self, type_: str, **fields: Any) -> None:
        with self.lock:
            self._write(self.peer.send(type_, **fields))

    def control(self, type_: str, **fields: Any) -> None:
        with self.lock:
            self._write(self.peer.control(type_, **fields))

    def _write(self, data: bytes) -> None:
        """Write to the current connection (caller holds the lock). Without one, the peer keeps the frame."""
        fd = self.out_fd
        if fd is None:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            self.out_fd = None
            if not self.detached:
                threading.Thread(target=self.end_tree, args=("the orchestrator closed the channel",)).start()

    # -- connections ------------------------------------------------------------------------------
    def connect(self, in_fd: int, out_fd: int) -> None:
        """Serve one connection until it ends. Say hello on it; frames go out on it only after the
        orchestrator's hello, replayed from where it got to, so the stream stays in sequence."""
        hello = self.peer.control(FrameType.HELLO, proto=PROTOCOL_VERSION, received=self.peer.received_seq,
                                  pid=os.getpid(), python=platform.python_version(), host=socket.gethostname())
        with self.lock:
            self.out_fd = None
            self.peer.reset_stream()
            try:
                write_all(out_fd, hello)
            except OSError:
                return
        self.read_loop(in_fd, out_fd)

    def read_loop(self, fd: int, out_fd: int) -> None:
        """Frames from the orchestrator. Calls go to the main thread; control frames are handled here."""
        handlers = self.frame_handlers(out_fd)
        to_main = self.inbox.put  # an unknown type too: the main thread expects init first and ignores the rest
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                if not self.detached:
                    self.end_tree("the orchestrator closed the channel")
                return  # detached: the connection's thread forgets it; the orphan timer keeps running
            self.last_heard = time.monotonic()
            try:
                with self.lock:
                    frames = self.peer.feed(data)
            except ProtocolError as exc:
                self.send(FrameType.ERROR, message=str(exc))
                self.end_tree(str(exc))
                return
            for frame in frames:
                if handlers.get(frame["t"], to_main)(frame):
                    return
            with self.lock:
                if self.peer.ack_due():
                    self._write(self.peer.control(FrameType.ACK))

    def on_hello(self, frame: Frame, out_fd: int) -> Optional[bool]:
        """The orchestrator's hello on the connection writing to `out_fd`: from now on frames go out on it,
        starting with those it has not received."""
        try:
            check_hello(frame)
        except ProtocolError as exc:
            self.control(FrameType.ERROR, message=str(exc))
            self.end_tree(str(exc))
            return True
        with self.lock:
            self.out_fd = out_fd
            self.connections += 1
            for replay in self.peer.replay_after(int(frame.get("received", 0))):
                self._write(replay)
        if self.connections > 1:
            self._transfers_cut()
        return None

    def on_bye(self, frame: Frame) -> Optional[bool]:
        self.end_tree("")
        return True

    def accept_loop(self, server: socket.socket) -> None:
        """Detached mode: each new connection replaces the previous one (the orchestrator reconnected)."""
        while True:
            conn, _ = server.accept()
            fd = conn.detach()
            with self.lock:
                old = self.out_fd
                self.out_fd = None
            if old is not None:
                try:
                    socket.socket(fileno=os.dup(old)).shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            threading.Thread(target=self._serve_connection, args=(fd,), daemon=True).start()

    def _serve_connection(self, fd: int) -> None:
        try:
            self.connect(fd, fd)
        finally:
            with self.lock:
                if self.out_fd == fd:
                    self.out_fd = None
            try:
                os.close(fd)
            except OSError:
                pass

    def heartbeat_loop(self) -> None:
        while True:
            time.sleep(min(self.heartbeat, max(self.orphan_timeout / 4, 0.05)))
            silent = time.monotonic() - self.last_heard
            if silent > self.orphan_timeout:
                self.end_tree(f"no word from the orchestrator for {silent:.0f} s (orphan timeout)",
                              power_off=True)
                return
            self.control(FrameType.HB)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
