"""How a run ends: Ctrl-C and SIGTERM through the loop's wake-up pipe, then every agent told bye, drained and
ended, and every machine released. Part of the Orchestrator (a mixin)."""

from __future__ import annotations

import os
import selectors
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from .errors import ExitCode, ProtocolError
from .records import Outcome, Reporter, WorkHandle
from .status import WorkStageStatus, WorkStatus
from .transport import short_name

if TYPE_CHECKING:
    from .protocol import Frame
    from .transfers import Transfers
    from .transport import Launcher

SHUTDOWN_GRACE_SECONDS = 3.0


class Ending:
    """Signals and shutdown, for Orchestrator (which sets every attribute used here)."""

    if TYPE_CHECKING:  # the Orchestrator's, declared for type checkers
        handles: dict[int, WorkHandle]
        launcher: Launcher
        outcome: Optional[Outcome]
        reporter: Reporter
        selector: selectors.BaseSelector
        transfers: Transfers
        _signal: Optional[int]
        _hurry: bool
        _wake_r: int
        _wake_w: int

        def write(self, handle: WorkHandle, data: bytes) -> None: ...
        def _on_log(self, handle: WorkHandle, frame: Frame) -> None: ...

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
