"""Where a work's published files go when they leave its machine: RelayStore (they stay on the producer's machine
and travel through the orchestrator) and UrlStore (an object store, through presigned URLs). A local run uses
storage.LocalStore."""

from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING, Any, Optional

from ..errors import LitError
from ..protocol import FrameType
from .transfers import TRANSFER_ATTEMPTS

if TYPE_CHECKING:
    from .transfers import FileTransfers


def make_store(agent: FileTransfers, spec: dict[str, Any]) -> Any:
    """The store the init frame's "storage" names, or None (no files leave the machine)."""
    from .. import storage

    kind = spec.get("kind")
    if kind == "local":
        return storage.LocalStore(spec["artifacts"], spec["drives"])
    if kind == "relay":
        return RelayStore(agent, spec["cache"], spec.get("keep"))
    if kind == "urls":
        return UrlStore(agent, spec["cache"])
    return None


class RelayStore:
    """Files stay on the producer's machine (in a cache, frozen by a hard link); the orchestrator streams them
    to whoever needs them over the connections it already has. Drives live with the orchestrator."""

    def __init__(self, agent: FileTransfers, cache: str, keep: Optional[str] = None) -> None:
        self.agent = agent
        self.cache = cache
        # `keep`: on a machine that goes after its work's last call (a GPU pod is deleted then), the run's drive
        # where what it publishes is kept with the orchestrator, which then serves fetches of it itself.
        self.keep = keep

    def publish(self, file: pathlib.Path, sha256: str) -> None:
        from ..storage import freeze

        target = pathlib.Path(self.cache) / sha256
        if not target.exists():
            freeze(file, target)
        if self.keep:
            self.drive_put(self.keep, sha256, target)

    def fetch(self, sha256: str, origin: str, target: pathlib.Path) -> None:
        # The orchestrator sends its kept copy if the producer kept one, else asks the producer.
        self.agent.receive_file(target, FrameType.FETCH, sha=sha256, origin=origin)

    def drive_put(self, drive: str, key: str, source: pathlib.Path) -> None:
        for _ in range(TRANSFER_ATTEMPTS):
            reply = self.agent.request(FrameType.DRIVE_PUT_BEGIN, drive=drive, key=key)
            self.agent.send_file(reply["xfer"], source)
            done = self.agent.request(FrameType.DRIVE_PUT_DONE, xfer=reply["xfer"])
            if done.get("ok"):
                return
            if not done.get("again"):  # cut by a lost connection: sent again, else a real error
                raise OSError(f"lit://{drive}: put {key} failed: {done.get('error')}")
        raise OSError(f"lit://{drive}: put {key} was cut by lost connections {TRANSFER_ATTEMPTS} times")

    def drive_get(self, drive: str, key: str, target: pathlib.Path) -> None:
        try:
            self.agent.receive_file(target, FrameType.DRIVE_GET, drive=drive, key=key)
        except LitError as exc:
            raise FileNotFoundError(f"lit://{drive}: no {key} ({exc})") from None

    def drive_list(self, drive: str, prefix: str) -> list[str]:
        return list(self.agent.request(FrameType.DRIVE_LIST, drive=drive, prefix=prefix).get("items", []))

    def drive_delete(self, drive: str, key: str) -> None:
        reply = self.agent.request(FrameType.DRIVE_DELETE, drive=drive, key=key)
        if not reply.get("ok"):
            raise FileNotFoundError(f"lit://{drive}: no {key}")


class UrlStore(RelayStore):
    """Files go to an object store through short-lived presigned URLs the orchestrator hands out for exactly
    the objects needed; the machine holds no credentials."""

    def _url(self, op: str, key: str) -> str:
        reply = self.agent.request(FrameType.PRESIGN, op=op, key=key)
        if not reply.get("url"):
            raise LitError(f"no URL to {op} {key}: {reply.get('error')}")
        return str(reply["url"])

    def publish(self, file: pathlib.Path, sha256: str) -> None:
        import urllib.request

        super().publish(file, sha256)
        size = file.stat().st_size
        with open(file, "rb") as fh:
            request = urllib.request.Request(self._url("put", f"artifacts/{sha256}"), data=fh, method="PUT",
                                             headers=_put_headers(size))
            with urllib.request.urlopen(request, timeout=600) as response:  # a presigned URL
                response.read()

    def fetch(self, sha256: str, origin: str, target: pathlib.Path) -> None:
        self._download(self._url("get", f"artifacts/{sha256}"), target)

    def _download(self, url: str, target: pathlib.Path) -> None:
        import shutil
        import urllib.error
        import urllib.request

        from ..storage import TransferError, partial_name

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_name(target, os.getpid())
        try:
            with urllib.request.urlopen(url, timeout=600) as response, open(tmp, "wb") as fh:
                shutil.copyfileobj(response, fh, 1024 * 1024)
        except urllib.error.HTTPError as exc:
            raise TransferError(f"{target.name}: the store answered {exc.code}") from None
        os.replace(tmp, target)

    def drive_put(self, drive: str, key: str, source: pathlib.Path) -> None:
        import urllib.request

        with open(source, "rb") as fh:
            request = urllib.request.Request(self._url("put", f"drives/{drive}/{key}"), data=fh, method="PUT",
                                             headers=_put_headers(source.stat().st_size))
            with urllib.request.urlopen(request, timeout=600) as response:
                response.read()

    def drive_get(self, drive: str, key: str, target: pathlib.Path) -> None:
        try:
            self._download(self._url("get", f"drives/{drive}/{key}"), target)
        except LitError as exc:
            raise FileNotFoundError(f"lit://{drive}: no {key} ({exc})") from None


def _put_headers(size: int) -> dict[str, str]:
    # An explicit type: urllib would label the body a form, and an object store may parse it as one.
    return {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
