"""The loop: runs the root flow whenever something changed, and talks to one agent per work.

Single-threaded and event-driven: it waits in select() on the agents' streams, a signal pipe and the next
timer (a schedule or a heartbeat), and calls root.run() only after an event changed something.
"""

from __future__ import annotations

import os
import selectors
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Optional, Protocol

from . import codec, context
from .app import LightningApp
from .component import Component
from .errors import AppFailed, ExitCode, LitError, ProtocolError, StateError
from .protocol import PROTOCOL_VERSION, Frame, FrameType, Peer, check_hello
from .schedule import Schedule
from .status import FINAL_STAGES, WorkStageStatus, WorkStatus
from .transport import AgentSpec, Launcher, LocalLauncher, Placement, Transport, free_port, short_name
from .work import LightningWork

HEARTBEAT_SECONDS = 10.0
ORPHAN_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 5.0
SHUTDOWN_GRACE_SECONDS = 3.0


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


class Orchestrator:
    """Runs one app: the `context.Runtime` its flows, works and structures reach while `run()` runs."""

    def __init__(
        self,
        app: LightningApp,
        app_file: Path,
        run_dir: Path,
        reporter: Optional[Reporter] = None,
        launcher: Optional[Launcher] = None,
        env: Optional[dict[str, str]] = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        orphan_timeout: float = ORPHAN_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.app_file = Path(app_file).resolve()
        self.run_dir = run_dir
        self.reporter: Reporter = reporter or NullReporter()
        self.launcher: Launcher = launcher or LocalLauncher()
        self.env = dict(env or {})
        self.orphan_timeout = orphan_timeout
        # Heartbeats several times per orphan timeout, so one lost beat never orphans a work.
        self.heartbeat = min(heartbeat, orphan_timeout / 4)
        self.handles: dict[int, WorkHandle] = {}
        self.schedules: list[Schedule] = []
        self.selector = selectors.DefaultSelector()
        self.outcome: Optional[Outcome] = None
        self.dirty = False
        self.new_calls = 0
        self.next_call_id = 0
        self.ticks = 0
        self._signal: Optional[int] = None
        self._hurry = False
        from .transfers import Transfers

        self.transfers = Transfers(self)
        self._frame_handlers = self.frame_handlers()
        self._wake_r, self._wake_w = os.pipe()

    # -- the tree ---------------------------------------------------------------------------------
    def adopt(self, component: Component) -> None:
        """A component joined the tree (at start, or created inside a flow's run())."""
        if isinstance(component, LightningWork):
            self._handle(component)
            return
        for child in component._lit_components():
            self.adopt(child)

    def _handle(self, work: LightningWork) -> WorkHandle:
        handle = self.handles.get(id(work))
        if handle is None:
            if not work.name or self.app.find(work.name) is not work:
                raise LitError(f"{type(work).__name__} is not attached to the app: assign it to an attribute "
                               "of a flow (self.my_work = MyWork()) before calling run()")
            handle = WorkHandle(work)
            self.handles[id(work)] = handle
        return handle

    def handle_named(self, name: str) -> Optional[WorkHandle]:
        component = self.app.find(name)
        return self.handles.get(id(component)) if isinstance(component, LightningWork) else None

    def schedule_added(self, schedule: Schedule) -> None:
        self.schedules.append(schedule)

    # -- calls from the flow ----------------------------------------------------------------------
    def call(self, work: LightningWork, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        handle = self._handle(work)
        enc_args = [codec.encode(a, f"{work.name}.run() argument {i}") for i, a in enumerate(args)]
        enc_kwargs = {k: codec.encode(v, f"{work.name}.run() argument {k}") for k, v in kwargs.items()}
        key = codec.dumps([enc_args, enc_kwargs])
        record = handle.calls.get(key)
        if record is not None and record.stage in FINAL_STAGES and not record.consumed:
            if record.stage == WorkStageStatus.STOPPED:
                record = None  # a stopped call did not finish: calling again starts it again
            else:
                if not work.cache_calls:
                    record.consumed = True  # seen once; the next call with these arguments runs again
                return None
        if record is None or record.consumed:
            record = self._send_call(handle, key, enc_args, enc_kwargs)
        if work.parallel:
            return None
        raise context.TickInterrupt()

    def _send_call(self, handle: WorkHandle, key: str, args: list[Any], kwargs: dict[str, Any]) -> CallRecord:
        handle.idle_deadline = None
        if handle.parked and handle.transport is not None:
            self._forget_transport(handle)  # its agent is ending with its machine: the call starts a new one
        self.next_call_id += 1
        record = CallRecord(self.next_call_id, key)
        handle.calls[key] = record
        handle.by_id[record.id] = record
        handle.inflight.append(record)
        self.new_calls += 1
        if handle.transport is None:
            self._start(handle)
        delta = self._flow_delta(handle)
        if len(handle.inflight) == 1:  # otherwise it is still running an earlier call; this one queues
            self._set_status(handle, WorkStatus.now(WorkStageStatus.PENDING))
        self.send(handle, "call", id=record.id, args=args, kwargs=kwargs, state=delta)
        return record

    def _flow_delta(self, handle: WorkHandle) -> dict[str, Any]:
        """What the flow changed on the work since its process last saw it (all of it, the first time)."""
        delta = {}
        work = handle.work
        for name, value in work._lit_vars().items():
            encoded = codec.encode(value, f"{work.name}.{name}")
            text = codec.dumps(encoded)
            if handle.remote_state.get(name) != text:
                handle.remote_state[name] = text
                delta[name] = encoded
        return delta

    def stop_work(self, work: LightningWork) -> None:
        handle = self._handle(work)
        if handle.transport is None or handle.stopping:
            if not work.has_finished and work.has_started:
                self._set_status(handle, WorkStatus.now(WorkStageStatus.STOPPED, "stopped by the flow"))
            return
        handle.stopping = True
        handle.stop_deadline = time.monotonic() + STOP_GRACE_SECONDS
        self.send(handle, "stop")

    # -- agents -----------------------------------------------------------------------------------
    def _start(self, handle: WorkHandle) -> None:
        handle.parked = False
        work = handle.work
        spec = AgentSpec(work.name, work.cloud_compute, self.run_dir, self.env)
        if work.port is None:
            object.__setattr__(work, "_lit_port", free_port())
        launched = self.launcher.launch(spec, self.app_file)
        handle.transport = launched.transport
        handle.placement = launched.placement
        handle.connected = handle.ready = handle.stopping = False
        handle.peer = Peer()
        handle.remote_state = {}
        # The init frame goes first; its contents are known once the machine is placed (see _send_init).
        handle.init_seq = handle.peer.reserve()
        self.selector.register(launched.transport.fileno(), selectors.EVENT_READ, handle)
        short = short_name(work.name)
        if handle.log_file is None:
            log_dir = self.run_dir / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            handle.log_file = open(log_dir / f"{short}.log", "a", encoding="utf-8")  # noqa: SIM115

    def _send_init(self, handle: WorkHandle) -> None:
        work = handle.work
        assert handle.placement is not None and handle.init_seq is not None
        placement = handle.placement()
        object.__setattr__(work, "_lit_internal_ip", placement.internal_ip)
        bind_host = placement.extra_init.get("bind_host")
        if bind_host and work.host == "127.0.0.1":
            object.__setattr__(work, "_lit_host", bind_host)
        init_args = None
        try:
            init_args = codec.encode(list(work._lit_init_args))
        except StateError:
            pass  # a static work is found by its path; only works made in run() need their arguments
        cls = type(work)
        handle.peer.fill(
            handle.init_seq, "init", app=placement.app_file, work=work.name, workdir=placement.workdir,
            cls=f"{cls.__module__}:{cls.__qualname__}", init=init_args, env=self.env,
            port=work.port, internal_ip=placement.internal_ip, heartbeat=self.heartbeat,
            orphan_timeout=self.orphan_timeout, **placement.extra_init,
        )
        handle.init_seq = None

    # -- frames out (also how Transfers reaches the agents) -------------------------------------------
    def send(self, handle: WorkHandle, type_: str, **fields: Any) -> None:
        """Send a reliable frame to `handle`'s agent: now if it is connected, else when it (re)connects."""
        data = handle.peer.send(type_, **fields)
        if handle.connected and handle.transport is not None:
            self.write(handle, data)

    def write(self, handle: WorkHandle, data: bytes) -> None:
        """Write encoded frames to `handle`'s agent as they are (it must have a transport)."""
        assert handle.transport is not None
        try:
            handle.transport.write(data)
            handle.last_sent = time.monotonic()
        except OSError:
            pass  # the read side sees the end of stream and reports why

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
            for record in list(handle.inflight):
                self._finish(handle, record, WorkStageStatus.STOPPED)
            self._set_status(handle, WorkStatus.now(WorkStageStatus.STOPPED, "stopped by the flow"))
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

    def _set_status(self, handle: WorkHandle, status: WorkStatus) -> None:
        object.__setattr__(handle.work, "_lit_status", status)
        self.reporter.status(short_name(handle.name), status)
        self.dirty = True

    def _fail_app(self, message: str, work: Optional[str] = None, formatted: Optional[str] = None,
                  exit_code: int = ExitCode.FAILED) -> None:
        if self.outcome is None:
            self.outcome = Outcome(exit_code, message, work, formatted)

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> Outcome:
        # Refuses a second app in this process (LitError); the app counts as running until its agents ended.
        with context.running(self):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            previous = self._install_signals()
            try:
                self.adopt(self.app.root)
                for handle in list(self.handles.values()):
                    if handle.work.start_with_flow:
                        self._start(handle)
                self._tick()
                while self.outcome is None:
                    self._wait()
                    if self.outcome is None and self.dirty:
                        self._tick()
            finally:
                self._shutdown()
                self._restore_signals(previous)
        assert self.outcome is not None
        self.outcome.works = self.summary()
        return self.outcome

    def _wait(self) -> None:
        now = time.monotonic()
        deadline = now + self.heartbeat
        for handle in self.handles.values():
            if handle.stop_deadline is not None:
                deadline = min(deadline, handle.stop_deadline)
            if handle.idle_deadline is not None:
                deadline = min(deadline, handle.idle_deadline)
        wall = time.time()
        for schedule in self.schedules:
            deadline = min(deadline, now + max(0.0, schedule.next_fire - wall))
        for key, _ in self.selector.select(max(0.0, deadline - now)):
            if key.data is None:
                self._on_signal()
            else:
                self._on_readable(key.data)
            if self.outcome is not None:
                return
        now, wall = time.monotonic(), time.time()
        for schedule in self.schedules:
            if schedule.advance(wall):
                self.dirty = True
        for handle in list(self.handles.values()):
            if handle.stop_deadline is not None and now >= handle.stop_deadline and handle.transport:
                handle.transport.kill()  # it did not stop in time; the end of stream finishes the job
                handle.stop_deadline = None
            if handle.idle_deadline is not None and now >= handle.idle_deadline and not handle.inflight:
                self._park(handle)
            if handle.connected and not handle.parked and now - handle.last_sent >= self.heartbeat:
                self.write(handle, handle.peer.control("hb"))

    def _tick(self) -> None:
        self.dirty = False
        self.new_calls = 0
        self.ticks += 1
        try:
            self.app.root.run()
        except context.TickInterrupt:
            pass
        except context.AppStop as stop:
            self.outcome = Outcome(ExitCode.FAILED if stop.failed else ExitCode.OK, stop.message)
            return
        except Exception as exc:
            self.outcome = Outcome(ExitCode.FAILED, f"the flow failed: {type(exc).__name__}: {exc}", None,
                                   _flow_traceback(exc))
            return
        finally:
            for schedule in self.schedules:
                schedule.end_tick()
        if self.outcome is None and self._quiescent():
            failed = [h.name for h in self.handles.values() if h.work.has_failed]
            if failed:
                names = ", ".join(short_name(n) for n in failed)
                self.outcome = Outcome(ExitCode.FAILED, f"the app finished with failed works: {names}")
            else:
                self.outcome = Outcome(ExitCode.OK, "")

    def _quiescent(self) -> bool:
        if self.new_calls or self.schedules or self.dirty:
            return False
        return not any(handle.inflight or handle.stopping for handle in self.handles.values())

    # -- signals and the end ----------------------------------------------------------------------
    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            previous[-1] = signal.set_wakeup_fd(self._wake_w)
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signum)
        except ValueError:
            pass  # not the main thread: the caller handles signals
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            if signum == -1:
                signal.set_wakeup_fd(handler)
            else:
                signal.signal(signum, handler)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _on_signum(self, signum: int, frame: Any) -> None:
        if self._signal is None:
            self._signal = signum
            return
        # A second signal while shutting down: stop waiting, end every work now.
        self._hurry = True
        for handle in self.handles.values():
            if handle.transport is not None:
                handle.transport.kill()

    def _on_signal(self) -> None:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        if self._signal is not None and self.outcome is None:
            code = ExitCode.INTERRUPTED if self._signal == signal.SIGINT else ExitCode.TERMINATED
            name = "interrupted (Ctrl-C)" if code == ExitCode.INTERRUPTED else "terminated (SIGTERM)"
            self.outcome = Outcome(code, name, interrupted=True)

    def _shutdown(self) -> None:
        """End every agent: say bye, keep reading what they still send until their streams end (or a few
        seconds pass), then kill what is left."""
        self.launcher.ending(self.reporter.progress)  # "machine stopped/terminated" lines are still shown
        live = [h for h in self.handles.values() if h.transport is not None]
        for handle in live:
            if handle.connected:
                self.write(handle, handle.peer.send("bye"))
            assert handle.transport is not None
            handle.transport.close()
        open_streams = {h.transport.fileno(): h for h in live if h.transport is not None}
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while open_streams and time.monotonic() < deadline and not self._hurry:
            for key, _ in self.selector.select(max(0.0, deadline - time.monotonic())):
                if key.data is None:
                    self._on_signal()
                    continue
                handle = key.data
                if key.fd in open_streams and not self._drain(handle):
                    self.selector.unregister(key.fd)
                    del open_streams[key.fd]
        for handle in live:
            transport = handle.transport
            assert transport is not None
            if transport.wait(0.0 if handle.transport and transport.fileno() in open_streams else 1.0) is None:
                transport.kill()
                transport.wait(1.0)
            transport.kill()  # whatever the work left behind in its process group
            if transport.fileno() in open_streams:
                try:
                    self.selector.unregister(transport.fileno())
                except (KeyError, ValueError):
                    pass
            handle.transport = None
            if not handle.work.has_finished and handle.work.has_started:
                stage = WorkStageStatus.STOPPED
                object.__setattr__(handle.work, "_lit_status", WorkStatus.now(stage, "the app ended"))
        # Every machine any work had ends with the app: those whose agents ended earlier (a GPU machine stopped
        # after its last call) too.
        finals = [threading.Thread(target=self.launcher.release, args=(h.name, True), daemon=True)
                  for h in self.handles.values() if h.work.has_started]
        for thread in finals:
            thread.start()  # in parallel: each is a cloud API round trip
        for thread in finals:
            while thread.is_alive() and not self._hurry:  # a second signal stops the waiting
                thread.join(0.1)
        for handle in self.handles.values():
            if handle.log_file is not None:
                handle.log_file.close()
                handle.log_file = None
        self.transfers.close()
        self.launcher.close(lambda: self._hurry)
        self.selector.close()

    def _drain(self, handle: WorkHandle) -> bool:
        """Forward log lines from an ending agent. False once its stream has ended."""
        transport = handle.transport
        assert transport is not None
        try:
            while True:
                data = transport.read()
                if not data:
                    return False
                for frame in handle.peer.feed(data):
                    if frame["t"] == "log":
                        self._on_log(handle, frame)
                    elif frame["t"] == "progress":
                        self.reporter.progress(short_name(handle.name), str(frame.get("step", "")))
        except BlockingIOError:
            return True
        except (OSError, ProtocolError):
            return False

    def summary(self) -> list[WorkSummary]:
        machines = self.launcher.machine_report()
        out = []
        for handle in sorted(self.handles.values(), key=lambda h: h.name):
            work = handle.work
            machine = machines.get(work.name, {})
            out.append(WorkSummary(short_name(work.name), work.cloud_compute.name, work.status.stage,
                                   handle.finished_calls, handle.wall_time, work.status.message,
                                   machine.get("instance_type", ""), machine.get("seconds", 0.0),
                                   machine.get("cost", 0.0), handle.last_final, machine.get("stops", [])))
        return out


def _nothing(handle: WorkHandle, frame: Frame) -> None:
    return None


def _flow_traceback(exc: BaseException) -> str:
    runtime_dir = os.path.dirname(os.path.abspath(__file__))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.dirname(os.path.abspath(f.filename)) != runtime_dir]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


__all__ = ["AppFailed", "Orchestrator", "Outcome", "Reporter", "WorkSummary"]
