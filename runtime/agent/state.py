"""What the parts of an agent share: the state of one Agent. Each part (connection, calls, transfers, proc) is a
mixin over it; core.Agent puts them together."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..protocol import Frame, Peer

# What a frame from the orchestrator does. It returns True when reading the connection it came on ends.
FrameHandler = Callable[[Frame], Optional[bool]]


class AgentState:
    def __init__(self, captured: list[tuple[int, str]], detached: bool = False,
                 host_log: Optional[str] = None) -> None:
        self.captured = captured
        self.detached = detached
        self.peer = Peer()
        self.lock = threading.Lock()  # guards the peer and the current connection
        self.log_lock = threading.Lock()
        self.out_fd: Optional[int] = None
        self.partial: dict[int, bytes] = {fd: b"" for fd, _ in captured}
        self.inbox: queue.Queue[Frame] = queue.Queue()
        self.work: Any = None
        self.sent: dict[str, str] = {}  # attribute -> canonical JSON last sent to the orchestrator
        self.last_heard = time.monotonic()
        self.heartbeat = 10.0
        self.orphan_timeout = 120.0
        self.poweroff: Optional[list[str]] = None
        self.current_call: Optional[int] = None
        self.ending = False
        self.host_log = open(host_log, "a", encoding="utf-8") if host_log else None  # noqa: SIM115
        self.cleanup: list[str] = []  # files and lease folders this agent removes as it ends
        self.store: Any = None  # where published files go (storage.FileStore)
        self.connections = 0  # how many times the orchestrator said hello: each is a new connection
        self.cancelled: set[str] = set()  # transfers whose receiver gave up: not sent on
        self.incoming: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    if TYPE_CHECKING:  # what the parts call on each other (each is defined in one of them)
        def frame_handlers(self, out_fd: int) -> dict[str, FrameHandler]: ...  # core

        def send(self, type_: str, **fields: Any) -> None: ...  # connection

        def control(self, type_: str, **fields: Any) -> None: ...  # connection

        def _write(self, data: bytes) -> None: ...  # connection

        def heartbeat_loop(self) -> None: ...  # connection

        def _transfers_cut(self) -> None: ...  # transfers

        def log_loop(self) -> None: ...  # proc

        def drain_logs(self) -> None: ...  # proc

        def end_tree(self, reason: str, power_off: bool = False) -> None: ...  # proc
