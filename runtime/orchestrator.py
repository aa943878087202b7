"""The loop: runs the root flow whenever something changed, and talks to one agent per work (the frames it gets
are agent_streams.py's; how a run ends, ending.py's; what it keeps per work, records.py's).

Single-threaded and event-driven: it waits in select() on the agents' streams, a signal pipe and the next
timer (a schedule or a heartbeat), and calls root.run() only after an event changed something.
"""

from __future__ import annotations

import os
import selectors
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from . import codec, context
from .agent_streams import AgentStreams
from .app import LightningApp
from .component import Component
from .ending import Ending
from .errors import AppFailed, ExitCode, LitError, StateError
from .history import write_start
from .protocol import Peer
from .records import CallRecord, NullReporter, Outcome, Reporter, WorkHandle, WorkSummary
from .schedule import Schedule
from .status import FINAL_STAGES, WorkStageStatus, WorkStatus
from .transfers import Transfers
from .transport import AgentSpec, Launcher, LocalLauncher, free_port, short_name
from .work import LightningWork

HEARTBEAT_SECONDS = 10.0
ORPHAN_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 5.0


class Orchestrator(AgentStreams, Ending):
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
        self.awaited: set[int] = set()  # works (their handles' keys) whose address the flow read before placement
        self.selector = selectors.DefaultSelector()
        self.outcome: Optional[Outcome] = None
        self.dirty = False
        self.new_calls = 0
        self.next_call_id = 0
        self.ticks = 0
        self._signal: Optional[int] = None
        self._hurry = False
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
        enc_args = [codec.encode(a, f"{work.name}.run() argument {i}", call=True) for i, a in enumerate(args)]
        enc_kwargs = {k: codec.encode(v, f"{work.name}.run() argument {k}", call=True) for k, v in kwargs.items()}
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

    def address_awaited(self, work: LightningWork) -> None:
        handle = self.handles.get(id(work))
        if handle is not None and handle.transport is not None and handle.init_seq is not None:
            self.awaited.add(id(work))  # started, not placed yet: it will have an address

    def stop_work(self, work: LightningWork) -> None:
        handle = self._handle(work)
        if handle.parked:
            return  # done, and its machine is being released already (a GPU node right after its success)
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
            # Line-buffered: `lit logs -f` (another process) sees each line as it arrives, not a buffer later.
            handle.log_file = open(log_dir / f"{short}.log", "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def _send_init(self, handle: WorkHandle) -> None:
        work = handle.work
        assert handle.placement is not None and handle.init_seq is not None
        placement = handle.placement()
        object.__setattr__(work, "_lit_internal_ip", placement.internal_ip)
        if id(work) in self.awaited:
            self.awaited.discard(id(work))
            self.dirty = True  # the flow read this address before it was known: it runs again with it
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
            # Which process runs this run: `lit runs` tells a running run from one whose process was killed.
            write_start(self.run_dir, self.app_file, self.launcher.cluster_name)
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
        if any(self.handles[key].transport is not None for key in self.awaited if key in self.handles):
            return False  # the flow waits for a work's address (its machine is being placed)
        return not any(handle.inflight or handle.stopping for handle in self.handles.values())

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


def _flow_traceback(exc: BaseException) -> str:
    runtime_dir = os.path.dirname(os.path.abspath(__file__))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.dirname(os.path.abspath(f.filename)) != runtime_dir]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


__all__ = ["AppFailed", "Orchestrator", "Outcome", "Reporter", "WorkSummary"]
