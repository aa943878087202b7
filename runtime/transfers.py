"""The orchestrator's side of moving files: relaying a producer's file to a work that needs it, drives kept
under the lit home, and presigned URLs from the launcher. Frames, never whole files, pass through here, so
memory stays bounded by one chunk whatever the file's size."""

from __future__ import annotations

import base64
import itertools
import os
import shutil
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Optional

from .home import lit_home
from .protocol import Frame, FrameType
from .storage import chunk_frames, drive_keys, partial_name
from .transport import short_name

if TYPE_CHECKING:
    from .orchestrator import Orchestrator, WorkHandle


# Where the orchestrator keeps a run's files for "kept" stores (provisioner.shipping names the drive).
KEPT_DRIVES = ".kept"
CUT = "the connection was lost while the file was on its way"


class Transfers:
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        self.forwards: dict[str, tuple[WorkHandle, WorkHandle]] = {}  # transfer id -> (receiver, producer)
        self.uploads: dict[str, tuple[IO[bytes], Path, Path, WorkHandle]] = {}  # id -> (file, tmp, target, sender)
        self.done_uploads: dict[str, Optional[str]] = {}
        self._ids = itertools.count(1)
        self.drives = lit_home() / "drives"
        self.kept: set[str] = set()  # drives of this run's kept files, removed at its end
        # The transfer frames an agent sends, and what each does (the orchestrator's table includes these).
        self.handlers: dict[str, Callable[[WorkHandle, Frame], None]] = {
            FrameType.FETCH: self._fetch,
            FrameType.CHUNK: self._chunk,
            FrameType.CHUNK_END: self._chunk,
            FrameType.XFER_CANCEL: self._cancel,
            FrameType.DRIVE_GET: self._drive_get,
            FrameType.DRIVE_PUT_BEGIN: self._drive_put_begin,
            FrameType.DRIVE_PUT_DONE: self._drive_put_done,
            FrameType.DRIVE_LIST: self._drive_list,
            FrameType.DRIVE_DELETE: self._drive_delete,
            FrameType.PRESIGN: self._presign,
        }

    # -- frames -----------------------------------------------------------------------------------
    def _reply(self, handle: WorkHandle, frame: Frame, **fields: Any) -> None:
        self.orchestrator.send(handle, FrameType.REPLY, re=frame.get("rid"), **fields)

    def _control(self, handle: WorkHandle, type_: str, **fields: Any) -> None:
        if handle.transport is not None and handle.connected:
            self.orchestrator.write(handle, handle.peer.control(type_, **fields))

    def _fetch(self, handle: WorkHandle, frame: Frame) -> None:
        kept = self._kept_copy(str(frame.get("sha", "")))
        if kept is not None:  # its producer kept it here: its machine may be gone, and this copy is nearer
            self._stream(handle, frame["xfer"], kept)
            return
        origin = str(frame.get("origin", ""))
        producer = self.orchestrator.handle_named(origin)
        if producer is None or producer.transport is None or producer.parked or not producer.connected:
            self._control(handle, FrameType.CHUNK_END, xfer=frame["xfer"], ok=False,
                          error=f"{short_name(origin)}'s machine is not running, so its files cannot be fetched")
            return
        self.forwards[frame["xfer"]] = (handle, producer)
        self.orchestrator.send(producer, FrameType.SERVE, xfer=frame["xfer"], sha=frame["sha"])

    def _chunk(self, handle: WorkHandle, frame: Frame) -> None:
        xfer = frame.get("xfer", "")
        target, _ = self.forwards.get(xfer, (None, None))
        if target is not None:
            if frame["t"] == FrameType.CHUNK:
                if target.transport is not None and target.connected:
                    self.orchestrator.write(target, frame["raw"])  # forwarded as it came: no parsing, no copy
                    self.orchestrator.write(target, b"\n")
            else:
                fields = {k: v for k, v in frame.items() if k not in ("t", "a", "s")}
                self._control(target, frame["t"], **fields)
            if frame["t"] == FrameType.CHUNK_END:
                del self.forwards[xfer]
            return
        upload = self.uploads.get(xfer)
        if upload is None:
            return
        file, tmp, dest, _ = upload
        if frame["t"] == FrameType.CHUNK:
            file.write(base64.b64decode(frame["b"]))
            return
        file.close()
        del self.uploads[xfer]
        if frame.get("ok"):
            os.replace(tmp, dest)
            self.done_uploads[xfer] = None
        else:
            tmp.unlink(missing_ok=True)
            self.done_uploads[xfer] = str(frame.get("error") or "the upload failed")

    def _drive_path(self, frame: Frame) -> Path:
        drive, key = str(frame.get("drive", "")), str(frame.get("key", ""))
        path = (self.drives / drive / key).resolve()
        if not str(path).startswith(str((self.drives / drive).resolve()) + os.sep):
            raise ValueError(f"lit://{drive}: {key} is outside the drive")
        return path

    def _kept_copy(self, sha: str) -> Optional[Path]:
        """This run's kept copy of a published file (see KEPT_DRIVES), if a producer kept it."""
        if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
            return None
        return next((path for path in (self.drives / drive / sha for drive in self.kept) if path.is_file()), None)

    def _drive_get(self, handle: WorkHandle, frame: Frame) -> None:
        try:
            path = self._drive_path(frame)
        except ValueError as exc:
            self._control(handle, FrameType.CHUNK_END, xfer=frame["xfer"], ok=False, error=str(exc))
            return
        self._stream(handle, frame["xfer"], path)

    def _stream(self, handle: WorkHandle, xfer: str, path: Path) -> None:
        """A file of lit's machine to a work, as chunks of transfer `xfer`."""
        try:
            for data in chunk_frames(xfer, path):
                if handle.transport is not None and handle.connected:
                    self.orchestrator.write(handle, data)
            self._control(handle, FrameType.CHUNK_END, xfer=xfer, ok=True)
        except OSError as exc:
            self._control(handle, FrameType.CHUNK_END, xfer=xfer, ok=False, error=str(exc))

    def _drive_put_begin(self, handle: WorkHandle, frame: Frame) -> None:
        try:
            dest = self._drive_path(frame)
        except ValueError as exc:
            self._reply(handle, frame, error=str(exc))
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        drive = str(frame.get("drive", ""))
        if drive.startswith(KEPT_DRIVES + "/"):
            self.kept.add(drive)
        xfer = f"put-{next(self._ids)}"
        tmp = partial_name(dest, xfer)
        self.uploads[xfer] = (open(tmp, "wb"), tmp, dest, handle)  # noqa: SIM115 - closed when the upload ends
        self._reply(handle, frame, xfer=xfer)

    def _drive_put_done(self, handle: WorkHandle, frame: Frame) -> None:
        error = self.done_uploads.pop(str(frame.get("xfer")), "the upload did not finish")
        self._reply(handle, frame, ok=error is None, error=error, again=error == CUT)

    def _cancel(self, handle: WorkHandle, frame: Frame) -> None:
        """The receiver gave a transfer up (it asks again): what still comes for it is dropped here."""
        xfer = str(frame.get("xfer"))
        receiver, producer = self.forwards.get(xfer, (None, None))
        if receiver is handle and producer is not None:
            del self.forwards[xfer]
            self._control(producer, FrameType.SERVE_CANCEL, xfer=xfer)  # and the producer stops sending it

    def reconnected(self, handle: WorkHandle) -> None:
        """`handle`'s connection was lost and is back: chunks are not replayed, so what it was sending is cut.
        Its receivers ask again (told here, for files it produced; by themselves, for files coming to it)."""
        for xfer, (receiver, producer) in list(self.forwards.items()):
            if producer is handle:
                del self.forwards[xfer]
                self._control(receiver, FrameType.CHUNK_END, xfer=xfer, ok=False, again=True, error=CUT)
        for xfer, (file, tmp, _, sender) in list(self.uploads.items()):
            if sender is handle:
                file.close()
                tmp.unlink(missing_ok=True)
                del self.uploads[xfer]
                self.done_uploads[xfer] = CUT

    def _drive_list(self, handle: WorkHandle, frame: Frame) -> None:
        prefix = str(frame.get("prefix", ""))
        store_list = self.orchestrator.launcher.store_list
        if handle.placement is not None and \
                (handle.placement().extra_init.get("storage") or {}).get("kind") == "urls":
            drive = f"drives/{frame.get('drive', '')}/"
            try:
                items = [key[len(drive):] for key in store_list(handle.name, drive + prefix)]
            except Exception as exc:  # reported to the work, which fails with it
                self._reply(handle, frame, items=[], error=str(exc))
                return
            self._reply(handle, frame, items=sorted(items))
            return
        self._reply(handle, frame, items=drive_keys(self.drives / str(frame.get("drive", "")), prefix))

    def _drive_delete(self, handle: WorkHandle, frame: Frame) -> None:
        store_delete = self.orchestrator.launcher.store_delete
        if handle.placement is not None and \
                (handle.placement().extra_init.get("storage") or {}).get("kind") == "urls":
            try:
                ok = store_delete(handle.name, f"drives/{frame.get('drive', '')}/{frame.get('key', '')}")
            except Exception:
                ok = False
            self._reply(handle, frame, ok=ok)
            return
        try:
            path = self._drive_path(frame)
            path.unlink()
            ok = True
        except (OSError, ValueError):
            ok = False
        self._reply(handle, frame, ok=ok)

    def _presign(self, handle: WorkHandle, frame: Frame) -> None:
        presign = self.orchestrator.launcher.presign  # without an object store it raises: the reply says why
        try:
            url = presign(handle.name, str(frame.get("op")), str(frame.get("key")))
        except Exception as exc:  # reported to the work, which fails with it
            self._reply(handle, frame, error=str(exc))
            return
        self._reply(handle, frame, url=url)

    def close(self) -> None:
        for file, tmp, _, _ in self.uploads.values():
            file.close()
            tmp.unlink(missing_ok=True)
        self.uploads.clear()
        # A run's files kept for machines that went after their last call ("kept" stores) go with the run.
        for drive in self.kept:
            shutil.rmtree(self.drives / drive, ignore_errors=True)
