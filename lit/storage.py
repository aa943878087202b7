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

__all__ = ["Drive", "Path", "Payload"]
