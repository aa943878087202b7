"""`lit.storage`, where Lightning users look for Path, Drive and Payload (see lit.runtime.storage)."""

from __future__ import annotations

from typing import Any

from lit.runtime.compat import reject, warn_ignored
from lit.runtime.storage import Drive, Path, Payload


def _missing(name: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise reject(f"lit.storage.{name}", "use lit.storage.Path, Drive or Payload to move files between works")

    return type(name, (), {"__init__": __init__, "__doc__": f"Not available yet: {name}."})


FileSystem = _missing("FileSystem")


class Mount:
    """Lightning's S3 mount for CloudCompute(mounts=...): accepted and inert (with a one-time warning)."""

    def __init__(self, source: str = "", mount_path: str = "") -> None:
        warn_ignored("L.storage.Mount", "lit does not mount buckets; read them from the work")
        self.source = source
        self.mount_path = mount_path


__all__ = ["Drive", "FileSystem", "Mount", "Path", "Payload"]
