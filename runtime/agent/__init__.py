"""The agent: one process that runs one work and speaks the protocol on a byte stream.

Started as `python -m lit.runtime.agent`. The protocol runs on the stdin/stdout it was started with; the
work's own stdout/stderr (and those of its child processes) are captured through pipes and forwarded as
log frames, so nothing the user prints can corrupt the channel. Runs on Python 3.9+ with the standard
library only: it is shipped to remote machines.
"""

# The parts: connection (the stream and its frames), calls (the work), transfers (files through the
# orchestrator), stores (where published files go), proc (the work's processes and output), modes (how an agent
# starts); core puts them together.
from __future__ import annotations

from .calls import DEFAULT_HOST
from .core import Agent
from .modes import main, run_detached, run_forkserver, run_stdio
from .stores import RelayStore, UrlStore, make_store
from .transfers import TRANSFER_ATTEMPTS

__all__ = ["DEFAULT_HOST", "TRANSFER_ATTEMPTS", "Agent", "RelayStore", "UrlStore", "main", "make_store",
           "run_detached", "run_forkserver", "run_stdio"]
