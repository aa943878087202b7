"""`lit.app.storage` (as `lightning.app.storage`)."""

from lit.storage import Drive, FileSystem, Mount, Path, Payload

__all__ = ["Drive", "FileSystem", "Mount", "Path", "Payload"]
