"""The loop's side of each agent's stream: reading frames, dispatching them through one table, a call's end, a
stream's end. Part of the Orchestrator (a mixin: it uses the loop's handles, reporter and launcher)."""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING, Callable, Optional

from . import codec
from .errors import ExitCode, ProtocolError, StateError
from .protocol import PROTOCOL_VERSION, Frame, FrameType, check_hello
from .records import CallRecord, WorkHandle
from .status import FINAL_STAGES, WorkStageStatus, WorkStatus
from .transport import short_name

if TYPE_CHECKING:
    import selectors

    from .records import Outcome, Reporter
    from .transfers import Transfers
    from .transport import Launcher

FrameHandler = Callable[[WorkHandle, Frame], None]


class AgentStreams:
    """Frames from agents, for Orchestrator (which sets every attribute used here)."""

    if TYPE_CHECKING:  # the Orchestrator's, declared for type checkers
        dirty: bool
        launcher: Launcher
        outcome: Optional[Outcome]
        reporter: Reporter
        selector: selectors.BaseSelector
        transfers: Transfers
        _frame_handlers: dict[str, FrameHandler]

        def write(self, handle: WorkHandle, data: bytes) -> None: ...
        def _send_init(self, handle: WorkHandle) -> None: ...
        def _set_status(self, handle: WorkHandle, status: WorkStatus) -> None: ...
        def _fail_app(self, message: str, work: Optional[str] = None, formatted: Optional[str] = None,
                      exit_code: int = ExitCode.FAILED) -> None: ...

    def _on_readable(self, handle: WorkHandle) -> None:
        assert handle.transport is not None
        try:
            data = handle.transport.read()
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._on_eof(handle)
            return
        try:
            frames = handle.peer.feed(data)
        except ProtocolError as exc:
            self._fail_app(f"{handle.name}: {exc}", handle.name, exit_code=ExitCode.INFRASTRUCTURE)
            return
        for frame in frames:
            self._on_frame(handle, frame)
            if self.outcome is not None:
                return
        if handle.peer.ack_due() and handle.connected:
            self.write(handle, handle.peer.control(FrameType.ACK))

    # -- frames in --------------------------------------------------------------------------------------
    def frame_handlers(self) -> dict[str, FrameHandler]:
        """What each frame type an agent (or its launcher's relay) sends does: one table, read per frame."""
        return {
            FrameType.HELLO: self._on_hello,
            FrameType.READY: self._on_ready,
            FrameType.STATE: self._on_state,
            FrameType.STATUS: self._on_status,
            FrameType.LOG: self._on_log,
            FrameType.ERROR: self._on_error,
            FrameType.PROGRESS: self._on_progress,
            FrameType.BYE: _nothing,  # the agent ends next: the end of its stream says the rest
            FrameType.HB: _nothing,  # its "a" was taken in by the peer already; the frame itself carries nothing
            FrameType.ACK: _nothing,
            **self.transfers.handlers,
        }

    def _on_frame(self, handle: WorkHandle, frame: Frame) -> None:
        handler = self._frame_handlers.get(frame["t"])
        if handler is not None:  # a type this lit does not know is ignored
            handler(handle, frame)

    def _on_hello(self, handle: WorkHandle, frame: Frame) -> None:
        try:
            check_hello(frame)
        except ProtocolError as exc:
            self._fail_app(f"{handle.name}: {exc}", handle.name, exit_code=ExitCode.INFRASTRUCTURE)
            return
        if handle.connected:  # a new connection to the same agent: what was streaming on the old one is cut
            self.transfers.reconnected(handle)
        handle.connected = True
        if handle.init_seq is not None:
            self._send_init(handle)
        self.write(handle, handle.peer.control(FrameType.HELLO, proto=PROTOCOL_VERSION,
                                               received=handle.peer.received_seq))
        for data in handle.peer.replay_after(int(frame.get("received", 0))):
            self.write(handle, data)

    def _on_ready(self, handle: WorkHandle, frame: Frame) -> None:
        handle.ready = True

    def _on_progress(self, handle: WorkHandle, frame: Frame) -> None:
        # From the launcher (placing the machine, shipping code): shown, and kept in a pending status.
        step = str(frame.get("step", ""))
        self.reporter.progress(short_name(handle.name), step)
        if handle.work.is_pending or not handle.work.has_started:
            object.__setattr__(handle.work, "_lit_status", WorkStatus.now(handle.work.status.stage, step))

    def _on_error(self, handle: WorkHandle, frame: Frame) -> None:
        message = frame.get("message", "the agent failed")
        self._fail_app(f"{short_name(handle.name)} could not start: {message}", handle.name, frame.get("traceback"))

    def _on_log(self, handle: WorkHandle, frame: Frame) -> None:
        line = frame.get("line", "")
        if handle.log_file is not None:
            handle.log_file.write(line + "\n")
        self.reporter.log(short_name(handle.name), frame.get("stream", "stdout"), line)

    def _on_state(self, handle: WorkHandle, frame: Frame) -> None:
        work = handle.work
        for name, encoded in (frame.get("d") or {}).items():
            text = codec.dumps(encoded)
            before = handle.remote_state.get(name)
            handle.remote_state[name] = text
            if before is not None and name in work.__dict__:
                try:
                    visible = codec.dumps(codec.encode(work.__dict__[name]))
                except StateError:
                    visible = None
                if visible != before:
                    continue  # the flow changed it meanwhile: its value wins and goes out with the next call
            object.__setattr__(work, name, codec.decode(encoded))
        self.dirty = True

    def _on_status(self, handle: WorkHandle, frame: Frame) -> None:
        stage = frame.get("stage")
        record = handle.by_id.get(frame.get("call")) if frame.get("call") is not None else None
        now = time.time()
        if stage == WorkStageStatus.RUNNING:
            if record is not None:
                record.stage, record.started = stage, now
            self._set_status(handle, WorkStatus.now(stage))
            return
        if stage not in FINAL_STAGES:
            return
        if record is not None:
            self._finish(handle, record, stage)
        handle.last_final = now
        if stage == WorkStageStatus.SUCCEEDED:
            object.__setattr__(handle.work, "_lit_successes", handle.work.num_successes + 1)
        message = frame.get("message")
        self._set_status(handle, WorkStatus.now(stage, message, reason=None if stage != "failed" else "error"))
        if stage == WorkStageStatus.FAILED and handle.work.raise_exception:
            self._fail_app(f"{short_name(handle.name)} failed: {message}", handle.name, frame.get("traceback"))
            return
        if not handle.inflight:
            delay = self.launcher.idle(handle.name)
            if delay is not None:
                handle.idle_deadline = time.monotonic() + delay
                if delay <= 0:
                    self._park(handle)

    def _park(self, handle: WorkHandle) -> None:
        """The work is done for now: end its agent and release its machine (a GPU instance is stopped at
        once: that is money). A later call starts the machine again."""
        handle.idle_deadline = None
        if handle.transport is None or handle.parked:
            return
        handle.parked = True
        if handle.connected:
            self.write(handle, handle.peer.send("bye"))
        self.launcher.release(handle.name, final=False)
        self.reporter.progress(short_name(handle.name), "done: releasing its machine")

    def _finish(self, handle: WorkHandle, record: CallRecord, stage: str) -> None:
        record.stage = stage
        record.ended = time.time()
        if record.started is not None:
            handle.wall_time += record.ended - record.started
        if record in handle.inflight:
            handle.inflight.remove(record)
            handle.finished_calls += 1

    def _forget_transport(self, handle: WorkHandle) -> None:
        transport = handle.transport
        assert transport is not None
        try:
            self.selector.unregister(transport.fileno())
        except (KeyError, ValueError):
            pass
        transport.close()
        handle.transport = None
        handle.connected = handle.ready = False

    def _on_eof(self, handle: WorkHandle) -> None:
        transport = handle.transport
        assert transport is not None
        if handle.parked:
            self._forget_transport(handle)
            self.launcher.release(handle.name, final=False)  # done already, unless the agent ended first
            return
        self.selector.unregister(transport.fileno())
        code = transport.wait(2.0)
        if code is None:
            transport.kill()
            code = transport.wait(2.0)
        failure = transport.failure()
        transport.kill()  # children the work left behind in its process group
        transport.close()
        handle.transport = None
        handle.connected = handle.ready = False
        if self.outcome is not None:
            return
        self.launcher.release(handle.name, final=False)
        if handle.stopping:
            handle.stopping = False
            handle.stop_deadline = None
            interrupted = bool(handle.inflight) or not handle.work.has_finished
            for record in list(handle.inflight):
                self._finish(handle, record, WorkStageStatus.STOPPED)
            if interrupted:  # stopped between calls, the last call's outcome stands (a node MultiNode released)
                self._set_status(handle, WorkStatus.now(WorkStageStatus.STOPPED, "stopped by the flow"))
            self.dirty = True  # the flow runs again (and the run may be over now)
            return
        reason = f"its process exited with code {code}" if code is not None else "its process ended"
        if code is not None and code < 0:
            try:
                reason = f"its process was killed by {signal.Signals(-code).name}"
            except ValueError:
                pass
        exit_code: int = ExitCode.FAILED
        if failure is not None:
            reason = str(failure)
            exit_code = getattr(failure, "exit_code", ExitCode.FAILED)
        for record in list(handle.inflight):
            self._finish(handle, record, WorkStageStatus.FAILED)
        self._set_status(handle, WorkStatus.now(WorkStageStatus.FAILED, reason, reason="process died"))
        # A failure below the work (its machine, the connection) ends the app even with raise_exception=False.
        if handle.work.raise_exception or exit_code != ExitCode.FAILED:
            self._fail_app(f"{short_name(handle.name)} failed: {reason}", handle.name, exit_code=exit_code)


def _nothing(handle: WorkHandle, frame: Frame) -> None:
    return None
