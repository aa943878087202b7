"""`lit.app.storage` (as `lightning.app.storage`)."""

from lit.storage import Drive, Path, Payload

__all__ = ["Drive", "Path", "Payload"]
