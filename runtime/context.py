"""Where a component finds the runtime that drives it (one app runs per process).

The app model (flows, works, structures, files) never imports the orchestrator: it asks `current_runtime()` for
the small `Runtime` interface below, which the orchestrator implements while `running(runtime)` holds it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Optional, Protocol

from .errors import LitError

if TYPE_CHECKING:
    from .component import Component
    from .schedule import Schedule
    from .storage import FileStore
    from .work import LightningWork


class Runtime(Protocol):
    """What the app model asks of the loop that runs it."""

    def adopt(self, component: Component) -> None:
        """`component` (and whatever it holds) joined the tree: at start, or created inside a flow's run()."""
        ...

    def call(self, work: LightningWork, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The flow called `work.run(*args, **kwargs)`. Returns at once for a parallel work or a finished call;
        otherwise raises TickInterrupt (the flow runs again when the call has an outcome)."""
        ...

    def stop_work(self, work: LightningWork) -> None:
        """The flow called `work.stop()`."""
        ...

    def schedule_added(self, schedule: Schedule) -> None:
        """A flow's schedule() call site was seen for the first time; the loop wakes the flow when it is due."""
        ...

    def address_awaited(self, work: LightningWork) -> None:
        """The flow read `work.internal_ip` before the work was placed: the run is not over until it is, and the
        flow runs again then (MultiNode waits for every node's address)."""
        ...


_current: ContextVar[Optional[Runtime]] = ContextVar("lit_runtime", default=None)
# The runtime of the app running in this process, whichever thread asks: a thread the flow's own code starts does
# not inherit context variables, and found the running app before there was one.
_in_process: Optional[Runtime] = None
_in_process_lock = threading.Lock()


def current_runtime() -> Optional[Runtime]:
    """The runtime driving the app model here, or None outside a running app (in an agent, or at import)."""
    runtime = _current.get()
    return runtime if runtime is not None else _in_process


@contextmanager
def running(runtime: Runtime) -> Iterator[Runtime]:
    """Make `runtime` the one the app model reaches while the block runs. One app runs per process: a second
    one (from any thread) is refused with LitError."""
    global _in_process
    with _in_process_lock:
        if _in_process is not None or _current.get() is not None:
            raise LitError("an app is already running in this process")
        _in_process = runtime
    token = _current.set(runtime)
    try:
        yield runtime
    finally:
        _current.reset(token)
        with _in_process_lock:
            _in_process = None


# The agent side: set once by the agent process, for the one work it executes and where that work's files go.
# Plain process globals, not context variables: the work's own threads (a server it starts) read them too.
agent_work: Optional[LightningWork] = None
agent_store: Optional[FileStore] = None
in_agent = False  # this process is a work's agent (it loads the app in the work's own folder, not where lit started)


class TickInterrupt(BaseException):
    """Ends the current flow tick (a blocking call is not finished yet). Never seen by user code."""


class AppStop(BaseException):
    """flow.stop() / flow.fail() end the app."""

    def __init__(self, message: str, failed: bool) -> None:
        super().__init__(message)
        self.message = message
        self.failed = failed
