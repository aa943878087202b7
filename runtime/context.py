"""Where a component finds the runtime that drives it (one app runs per process)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

# Set by the orchestrator while an app runs in this process.
orchestrator: Optional[Orchestrator] = None
# Set in an agent process: the work this process executes, and where its files go (a storage.FileStore).
agent_work: Optional[Any] = None
agent_store: Optional[Any] = None


class TickInterrupt(BaseException):
    """Ends the current flow tick (a blocking call is not finished yet). Never seen by user code."""


class AppStop(BaseException):
    """flow.stop() / flow.fail() end the app."""

    def __init__(self, message: str, failed: bool) -> None:
        super().__init__(message)
        self.message = message
        self.failed = failed
