"""The Agent: its parts put together, and the one table that says what each frame from the orchestrator does."""

from __future__ import annotations

from typing import Optional

from ..protocol import Frame, FrameType
from .calls import Calls
from .connection import Connection
from .proc import Processes
from .state import FrameHandler
from .transfers import FileTransfers


class Agent(Connection, Calls, FileTransfers, Processes):
    """Runs one work. `stdio`: the protocol is on the stdin/stdout it was started with, and the end of that
    stream ends the work. `detached`: it listens on a unix socket and outlives any one connection (an SSH
    session relays to it); it ends its work only after hearing nothing for the orphan timeout."""

    def frame_handlers(self, out_fd: int) -> dict[str, FrameHandler]:
        """What each frame type the orchestrator sends does, on the connection that writes to `out_fd`. The
        reader's thread runs them; init and call go on to the main thread, which runs the work."""
        return {
            FrameType.HELLO: lambda frame: self.on_hello(frame, out_fd),
            FrameType.INIT: self.inbox.put,
            FrameType.CALL: self.inbox.put,
            FrameType.STOP: self.on_stop,
            FrameType.BYE: self.on_bye,
            FrameType.REPLY: self.on_reply,
            FrameType.SERVE: self.serve_file,
            FrameType.SERVE_CANCEL: self.on_serve_cancel,
            FrameType.CHUNK: self.on_chunk,
            FrameType.CHUNK_END: self.on_chunk,
            FrameType.HB: _nothing,  # its "a" was taken in by the peer already; hearing it is what counts
            FrameType.ACK: _nothing,
        }


def _nothing(frame: Frame) -> Optional[bool]:
    return None
