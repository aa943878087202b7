"""Files through the orchestrator (relay store): requests and their replies, files received as chunk frames and
files served as chunk frames. Chunks are control frames (large data is not kept for replay), so a transfer cut by
a lost connection is asked for, or sent, again."""

from __future__ import annotations

import os
import pathlib
import threading
from typing import Any, Optional

from ..protocol import Frame, FrameType
from .state import AgentState

TRANSFER_ATTEMPTS = 5  # a file cut by lost connections is asked for (or sent) again this many times


class FileTransfers(AgentState):
    def request(self, type_: str, **fields: Any) -> Frame:
        """Send a request and wait for its reply (from the work's thread)."""
        rid = f"{os.getpid()}-{next(self._ids)}"
        waiter: dict[str, Any] = {"event": threading.Event()}
        self.waiting[rid] = waiter
        self.send(type_, rid=rid, **fields)
        waiter["event"].wait()
        del self.waiting[rid]
        return waiter["reply"]

    def on_reply(self, frame: Frame) -> Optional[bool]:
        waiter = self.waiting.get(frame.get("re", ""))
        if waiter is not None:
            waiter["reply"] = frame
            waiter["event"].set()
        return None

    def receive_file(self, target: pathlib.Path, type_: str, **fields: Any) -> None:
        """Ask for a file; its chunks arrive as control frames and are written to `target`. Chunks are not kept
        for replay, so a transfer cut by a lost connection (this one, or the producer's) is asked for again."""
        from ..storage import TransferError, partial_name

        target.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(TRANSFER_ATTEMPTS):
            xfer = f"{os.getpid()}-{next(self._ids)}"
            tmp = partial_name(target, xfer)
            incoming = {"file": open(tmp, "wb"), "event": threading.Event(), "error": None,  # noqa: SIM115
                        "again": False, "connection": self.connections}
            self.incoming[xfer] = incoming
            self.send(type_, xfer=xfer, **fields)
            incoming["event"].wait()
            del self.incoming[xfer]
            incoming["file"].close()
            if incoming["again"]:
                tmp.unlink()
                self.control(FrameType.XFER_CANCEL, xfer=xfer)  # its sender may still be sending: no one reads it
                continue
            if incoming["error"]:
                tmp.unlink()
                raise TransferError(f"{target.name}: {incoming['error']}")
            os.replace(tmp, target)
            return
        raise TransferError(f"{target.name}: the transfer was cut by lost connections {TRANSFER_ATTEMPTS} times")

    def _transfers_cut(self) -> None:
        """A new connection: the chunks of files on their way here may have been lost with the old one."""
        for incoming in list(self.incoming.values()):
            if incoming["connection"] < self.connections:  # asked for before this connection
                incoming["again"] = True
                incoming["event"].set()

    def send_file(self, xfer: str, source: pathlib.Path) -> None:
        """Stream a file as chunk frames (control frames: large data is not kept for replay). If the connection
        changes meanwhile the rest is not sent: the receiver asks again."""
        from ..storage import chunk_frames

        connection = self.connections
        try:
            for data in chunk_frames(xfer, source):
                with self.lock:
                    if self.connections != connection or self.out_fd is None or xfer in self.cancelled:
                        return
                    self._write(data)
            self.control(FrameType.CHUNK_END, xfer=xfer, ok=True)
        except OSError as exc:
            self.control(FrameType.CHUNK_END, xfer=xfer, ok=False, error=f"cannot read it on its machine: {exc}")
        finally:
            self.cancelled.discard(xfer)

    def on_chunk(self, frame: Frame) -> Optional[bool]:
        """A chunk or the chunk_end of a file on its way here."""
        incoming = self.incoming.get(frame.get("xfer", ""))
        if incoming is None:
            return None
        if frame["t"] == FrameType.CHUNK:
            import base64

            incoming["file"].write(base64.b64decode(frame["b"]))
            return None
        if frame.get("again"):  # the sender's connection was lost meanwhile
            incoming["again"] = True
        elif not frame.get("ok"):
            incoming["error"] = frame.get("error") or "the transfer failed"
        incoming["event"].set()
        return None

    def serve_file(self, frame: Frame) -> Optional[bool]:
        """The orchestrator asks for a file this work published (relay store)."""
        source = pathlib.Path(self.store.cache) / frame["sha"] if self.store is not None else None
        if source is None or not source.is_file():
            self.control(FrameType.CHUNK_END, xfer=frame["xfer"], ok=False,
                         error="it is not on its producer's machine")
            return None
        threading.Thread(target=self.send_file, args=(frame["xfer"], source), daemon=True).start()
        return None

    def on_serve_cancel(self, frame: Frame) -> Optional[bool]:
        self.cancelled.add(str(frame.get("xfer")))
        return None
