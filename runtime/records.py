"""What the loop keeps per work and per call, what it reports as it goes, and what a run ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Callable, Optional, Protocol

from .protocol import Frame, Peer
from .status import WorkStageStatus, WorkStatus
from .transport import Placement, Transport
from .work import LightningWork


class Reporter(Protocol):
    """What the loop tells the outside world. The CLI prints; tests collect."""

    def log(self, work: str, stream: str, line: str) -> None: ...

    def status(self, work: str, status: WorkStatus) -> None: ...

    def progress(self, work: str, step: str) -> None:
        """A step in preparing the work's machine (connecting, shipping code, agent up)."""
        ...


class NullReporter:
    def progress(self, work: str, step: str) -> None:
        return None

    def log(self, work: str, stream: str, line: str) -> None:
        return None

    def status(self, work: str, status: WorkStatus) -> None:
        return None


@dataclass
class CallRecord:
    id: int
    key: str
    stage: str = WorkStageStatus.PENDING
    started: Optional[float] = None
    ended: Optional[float] = None
    consumed: bool = False


@dataclass
class WorkSummary:
    name: str
    compute: str
    stage: str
    calls: int
    wall_time: float
    message: Optional[str] = None
    instance_type: str = ""
    machine_seconds: float = 0.0
    cost: float = 0.0
    finished_at: float = 0.0  # wall time of the last final status
    machine_stops: list[list[float]] = field(default_factory=list)  # [asked, accepted] per machine stop


@dataclass
class Outcome:
    exit_code: int
    message: str = ""
    failed_work: Optional[str] = None
    traceback: Optional[str] = None
    works: list[WorkSummary] = field(default_factory=list)
    interrupted: bool = False


class WorkHandle:
    """The orchestrator's side of one work: its agent's stream, its calls, what its process knows."""

    def __init__(self, work: LightningWork) -> None:
        self.work = work
        self.peer = Peer()
        self.transport: Optional[Transport] = None
        self.connected = False
        self.ready = False
        self.stopping = False
        self.remote_state: dict[str, str] = {}  # attribute -> canonical JSON the work's process has
        self.calls: dict[str, CallRecord] = {}
        self.by_id: dict[int, CallRecord] = {}
        self.inflight: list[CallRecord] = []
        self.finished_calls = 0
        self.wall_time = 0.0
        self.log_file: Optional[IO[str]] = None
        self.stop_deadline: Optional[float] = None
        self.last_sent = 0.0
        self.placement: Optional[Callable[[], Placement]] = None
        self.init_seq: Optional[int] = None
        self.idle_deadline: Optional[float] = None  # when its machine is released if no call comes
        self.last_final = 0.0
        self.parked = False  # its machine was released after its last call; a new call starts it again

    @property
    def name(self) -> str:
        return self.work.name

    @property
    def alive(self) -> bool:
        return self.transport is not None


# What a frame from an agent does (Orchestrator.frame_handlers).
FrameHandler = Callable[[WorkHandle, Frame], None]
