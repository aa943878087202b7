"""`lit.storage`, where Lightning users look for Path, Drive and Payload.

Moving files between machines is not built yet: these names raise a clear error instead of half working.
"""

from __future__ import annotations

from typing import Any

from lit.runtime.compat import reject


def _missing(name: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise reject(f"lit.storage.{name}", "moving files between works is not available in this version; "
                     "write files inside one work, or pass small values as state")

    return type(name, (), {"__init__": __init__, "__doc__": f"Not available yet: {name}."})


Path = _missing("Path")
Drive = _missing("Drive")
Payload = _missing("Payload")
FileSystem = _missing("FileSystem")


class Mount:
    """Lightning's S3 mount for CloudCompute(mounts=...): accepted and inert (with a one-time warning)."""

    def __init__(self, source: str = "", mount_path: str = "") -> None:
        from lit.runtime.compat import warn_ignored

        warn_ignored("L.storage.Mount", "lit does not mount buckets; read them from the work")
        self.source = source
        self.mount_path = mount_path


__all__ = ["Drive", "FileSystem", "Mount", "Path", "Payload"]
